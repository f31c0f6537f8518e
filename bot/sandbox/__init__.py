"""The WeCom sandbox: try the bot, and train its users, before there are WeCom credentials.

With no WeCom settings, ``run_bot.py serve`` (``make run``) embeds a fake WeCom and configures the bot against it,
and ``/sandbox/`` shows the configured work groups and private chats as chats: the bot's messages appear there,
and a person types as any configured member; the lines travel to the bot as WeCom sends them: in the work groups
over the intelligent robot's long connection the bot keeps to the fake (or, with ``SANDBOX_ROBOT=callback``, as the
robot's signed, encrypted callbacks), in private chats as the app's callbacks, through the bot's real endpoints. A
demo feed hands over realistic sample tickets through the real signed ingest API.

* :mod:`bot.sandbox.wiring`: when it is on, where the fake runs, the credentials, how the groups reach the bot.
* :mod:`bot.sandbox.embed`: the people's side: typing, clicking, demo hand-overs; the fake's lifetime.
* :mod:`bot.sandbox.frames`: lines and clicks over the robot's long connection, and what became of them.
* :mod:`bot.sandbox.records`: what the fake records, as the page's chat items.
* :mod:`bot.sandbox.web`: the page and its JSON API; :func:`attach` wires it all into ``create_app``.
* :mod:`bot.sandbox.simulate`: callbacks built as WeCom builds them; passive replies opened.
* :mod:`bot.sandbox.render`: messages as safe HTML. :mod:`bot.sandbox.chats`: chats and the page's feed.
* :mod:`bot.sandbox.demo`: the sample tickets.
* :mod:`bot.sandbox.fake`: the fake WeCom itself, also what the tests run the bot against.

Nothing here is imported unless the sandbox is on: the composition root imports :mod:`bot.sandbox.web` lazily.
"""
