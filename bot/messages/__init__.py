"""Every Chinese text and card the bot shows, and the typed replies and notices it produces — no WeCom JSON."""
