"""A fake WeCom (企业微信) server API, served over real HTTP, for tests and the demo sandbox.

It enforces what the bot must cope with: access tokens that expire (42001), wrong credentials, recipients that do
not exist (``invaliduser``, 81013), size limits, per-member limits that drop messages silently, the robot's
20 messages a minute (45009), one-use ``response_code``/``response_url``, and injected faults. Time comes from the
``clock`` it is given, so tests move time instead of sleeping.

    fake = FakeWeCom(corp_id="ww1", secrets={"s3cret": 1000002}, webhook_keys=["k1"], members=["zhangsan"])
    client = await aiohttp_client(make_app(fake))
    ...
    assert fake.messages_to(userid="zhangsan")[0].body["text"]["content"] == "..."
"""

from bot.sandbox.fake.core import FakeWeCom
from bot.sandbox.fake.model import Delivered, Dropped, Fault, PathStats
from bot.sandbox.fake.server import make_app, serve

__all__ = ["Delivered", "Dropped", "FakeWeCom", "Fault", "PathStats", "make_app", "serve"]
