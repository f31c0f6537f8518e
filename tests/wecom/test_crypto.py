"""Callback crypto against Tencent's published vectors, byte for byte, and against every way a callback can be bad.

Vectors:

* ``SAMPLE_*``: ``sbzhu/weworkapi_python`` ``callback/Sample.py`` (Tencent's Python sample, 2016 values): token,
  EncodingAESKey, corpid, the URL-verification request and the encrypted POST, whose plaintext is the same file's
  ``sRespData``.
* ``DOC_*``: the 2014 values of Tencent's "加解密方案说明" (developer page 90968; the request lines are quoted in the
  comments of the same ``Sample.py``, the keys in Tencent's C# sample): token ``QDG6eK``, corpid
  ``wx5823bf96d3bd56c7``. The page prints the decrypted XML indented; the bytes are newline-separated.
* ``JSON_*``: ``sbzhu/weworkapi_python`` ``callback_json/Sample.py`` (``WXBizJsonMsgCrypt``), signed and encrypted
  with the ``SAMPLE_*`` keys; its plaintext is that file's commented ``sRespData``, typo included.

There is no published vector for the intelligent robot's empty receive id; that case is covered by round trips, by
frames built here independently with ``cryptography``, and by interop with wechatpy.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import unquote_plus

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.clock import TZ
from bot.wecom import crypto as crypto_module
from bot.wecom.crypto import CallbackCrypto, CallbackCryptoError, check_timestamp, raw_query_param

SAMPLE_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
SAMPLE_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
SAMPLE_CORP = "ww1436e0e65a779aee"
SAMPLE_VERIFY = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "timestamp": "1476416373",
    "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
SAMPLE_ECHO_PLAIN = "1288432023552776189"
SAMPLE_POST_SIG, SAMPLE_POST_TS, SAMPLE_POST_NONCE = (
    "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
    "1476422779",
    "1597212914",
)
SAMPLE_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkY"
    "cD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka"
    "7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49H"
    "KYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
SAMPLE_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId>"
    "<AgentID>1000002</AgentID></xml>"
).encode()

DOC_TOKEN = "QDG6eK"
DOC_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
DOC_CORP = "wx5823bf96d3bd56c7"
DOC_VERIFY_QUERY = (
    "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780"
    "&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
)
DOC_ECHO_PLAIN = "1616140317555161061"
DOC_POST_SIG, DOC_POST_TS, DOC_POST_NONCE = "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149"
DOC_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3"
    "TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gs"
    "ijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUa"
    "x5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIG"
    "HBZZIs2pDBS8R07+qN+E7Q=="
)
DOC_PLAIN = (
    b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    b"<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    b"<CreateTime>1409659813</CreateTime>\n"
    b"<MsgType><![CDATA[text]]></MsgType>\n"
    b"<Content><![CDATA[hello]]></Content>\n"
    b"<MsgId>4561255354251345929</MsgId>\n"
    b"<AgentID>218</AgentID>\n"
    b"</xml>"
)

JSON_SIG = "e3647471e395139e2308c1fa963f2d648a00b90e"
JSON_ENCRYPT = (
    "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9frBoUE2"
    "Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4W"
    "eG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU="
)
JSON_PLAIN = (
    b'{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", "CreateTime": 1409659813, '
    b'"MsgType": "text", "Content": "hello", "MsgId": 4561255354251345929, "AgentID": 218}'
)

# Tencent's reply template (WXBizMsgCrypt3.XMLParse.AES_TEXT_RESPONSE_TEMPLATE).
TENCENT_XML_REPLY = (
    "<xml>\n<Encrypt><![CDATA[{0}]]></Encrypt>\n<MsgSignature><![CDATA[{1}]]></MsgSignature>\n"
    "<TimeStamp>{2}</TimeStamp>\n<Nonce><![CDATA[{3}]]></Nonce>\n</xml>"
)

ROBOT_TOKEN = "RobotToken123"
ROBOT_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _aes(key43: str) -> Cipher[modes.CBC]:
    key = base64.b64decode(key43 + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def raw_decrypt(key43: str, encrypt: str) -> bytes:
    """An independent oracle: plain AES-CBC, no framing."""
    decryptor = _aes(key43).decryptor()
    return decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()


def raw_encrypt(key43: str, frame: bytes) -> str:
    encryptor = _aes(key43).encryptor()
    return base64.b64encode(encryptor.update(frame) + encryptor.finalize()).decode()


def fixed(prefix: bytes) -> Callable[[int], bytes]:
    return lambda n: prefix[:n]


def signed(c: CallbackCrypto, encrypt: str, ts: str = "1700000000", nonce: str = "n1") -> tuple[str, str, str, str]:
    return c.signature(ts, nonce, encrypt), ts, nonce, encrypt


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(CallbackCryptoError) as info:
        call()
    return info.value.code


@pytest.fixture
def sample() -> CallbackCrypto:
    return CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)


@pytest.fixture
def robot() -> CallbackCrypto:
    return CallbackCrypto(ROBOT_TOKEN, ROBOT_KEY, "")


# -- Tencent's vectors ----------------------------------------------------------------------------------------------


def test_sample_url_verification(sample: CallbackCrypto) -> None:
    expected = SAMPLE_VERIFY["msg_signature"]
    assert sample.signature(SAMPLE_VERIFY["timestamp"], SAMPLE_VERIFY["nonce"], SAMPLE_VERIFY["echostr"]) == expected
    assert sample.verify_url(**SAMPLE_VERIFY) == SAMPLE_ECHO_PLAIN


def test_sample_post_decrypts_to_the_sample_xml(sample: CallbackCrypto) -> None:
    assert sample.decrypt(SAMPLE_POST_SIG, SAMPLE_POST_TS, SAMPLE_POST_NONCE, SAMPLE_ENCRYPT) == SAMPLE_PLAIN


def test_doc_url_verification_from_the_raw_query() -> None:
    c = CallbackCrypto(DOC_TOKEN, DOC_KEY, DOC_CORP)
    args = {
        name: raw_query_param(DOC_VERIFY_QUERY, name) for name in ("msg_signature", "timestamp", "nonce", "echostr")
    }
    assert c.verify_url(**args) == DOC_ECHO_PLAIN


def test_doc_verification_survives_form_decoding_of_plus() -> None:
    """A raw ``+`` in the query, decoded as a form, becomes a space; echostr is repaired, then signed."""
    c = CallbackCrypto(DOC_TOKEN, DOC_KEY, DOC_CORP)
    query = DOC_VERIFY_QUERY.replace("%2B", "+")
    mangled = {k: unquote_plus(v) for k, v in (p.split("=", 1) for p in query.split("&"))}
    assert " " in mangled["echostr"]
    assert c.verify_url(**mangled) == DOC_ECHO_PLAIN


def test_doc_post_decrypts_to_the_doc_xml() -> None:
    c = CallbackCrypto(DOC_TOKEN, DOC_KEY, DOC_CORP)
    assert c.decrypt(DOC_POST_SIG, DOC_POST_TS, DOC_POST_NONCE, DOC_ENCRYPT) == DOC_PLAIN


def test_json_sample_decrypts_byte_for_byte(sample: CallbackCrypto) -> None:
    assert sample.decrypt(JSON_SIG, DOC_POST_TS, DOC_POST_NONCE, JSON_ENCRYPT) == JSON_PLAIN


@pytest.mark.parametrize(
    ("token", "key", "corp", "encrypt", "plain"),
    [
        (SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP, SAMPLE_ENCRYPT, SAMPLE_PLAIN),
        (SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP, SAMPLE_VERIFY["echostr"], SAMPLE_ECHO_PLAIN.encode()),
        (SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP, JSON_ENCRYPT, JSON_PLAIN),
        (DOC_TOKEN, DOC_KEY, DOC_CORP, DOC_ENCRYPT, DOC_PLAIN),
    ],
)
def test_encrypt_with_the_samples_prefix_reproduces_the_sample_ciphertext(
    token: str, key: str, corp: str, encrypt: str, plain: bytes
) -> None:
    prefix = raw_decrypt(key, encrypt)[:16]
    c = CallbackCrypto(token, key, corp, random_bytes=fixed(prefix))
    assert c.encrypt(plain) == encrypt


def test_xml_reply_reproduces_the_sample_envelope_and_signature() -> None:
    """EncryptMsg(sRespData, sReqNonce, sReqTimeStamp) with the sample's prefix: Tencent's layout, Tencent's
    ciphertext, and the signature of the sample POST."""
    prefix = raw_decrypt(SAMPLE_KEY, SAMPLE_ENCRYPT)[:16]
    c = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP, random_bytes=fixed(prefix))
    reply = c.encrypt_xml_reply(SAMPLE_PLAIN.decode(), SAMPLE_POST_NONCE, SAMPLE_POST_TS)
    assert reply == TENCENT_XML_REPLY.format(SAMPLE_ENCRYPT, SAMPLE_POST_SIG, SAMPLE_POST_TS, SAMPLE_POST_NONCE)


def test_json_reply_reproduces_the_json_sample_encrypt_and_signature() -> None:
    import json

    prefix = raw_decrypt(SAMPLE_KEY, JSON_ENCRYPT)[:16]
    c = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP, random_bytes=fixed(prefix))
    encrypt = c.encrypt(JSON_PLAIN)
    assert encrypt == JSON_ENCRYPT
    assert c.signature(DOC_POST_TS, DOC_POST_NONCE, encrypt) == JSON_SIG
    reply = json.loads(c.encrypt_json_reply({"msgtype": "text"}, DOC_POST_NONCE, DOC_POST_TS))
    assert set(reply) == {"encrypt", "msgsignature", "timestamp", "nonce"}
    assert reply["timestamp"] == DOC_POST_TS
    assert reply["nonce"] == DOC_POST_NONCE
    assert reply["msgsignature"] == c.signature(DOC_POST_TS, DOC_POST_NONCE, reply["encrypt"])


# -- round trips ----------------------------------------------------------------------------------------------------


def test_app_xml_reply_round_trip(sample: CallbackCrypto) -> None:
    import xmltodict

    reply = xmltodict.parse(sample.encrypt_xml_reply("<xml><Content>回复</Content></xml>", "abc", "1700000000"))["xml"]
    plain = sample.decrypt(reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"], reply["Encrypt"])
    assert plain == "<xml><Content>回复</Content></xml>".encode()


def test_robot_json_reply_round_trip(robot: CallbackCrypto) -> None:
    import json

    payload = {"msgtype": "text", "text": {"content": "已受理 ✓"}}
    reply = json.loads(robot.encrypt_json_reply(payload, "n0nce", "1700000000"))
    plain = robot.decrypt(reply["msgsignature"], reply["timestamp"], reply["nonce"], reply["encrypt"])
    assert json.loads(plain) == payload


def test_robot_frame_has_nothing_after_the_message(robot: CallbackCrypto) -> None:
    plain = raw_decrypt(ROBOT_KEY, robot.encrypt(b"{}"))
    pad = plain[-1]
    assert plain[16:-pad] == (2).to_bytes(4, "big") + b"{}"
    assert len(plain) % 32 == 0


def test_robot_decrypts_an_independently_built_frame(robot: CallbackCrypto) -> None:
    msg = b'{"msgid":"m1"}'
    frame = b"0123456789abcdef" + len(msg).to_bytes(4, "big") + msg
    frame += bytes([32 - len(frame) % 32]) * (32 - len(frame) % 32)
    assert robot.decrypt(*signed(robot, raw_encrypt(ROBOT_KEY, frame))) == msg


def test_padding_is_a_full_block_when_aligned(robot: CallbackCrypto) -> None:
    msg = b"x" * (64 - 20)  # 16 + 4 + 44 = 64: PKCS#7 adds a whole 32-byte block
    plain = raw_decrypt(ROBOT_KEY, robot.encrypt(msg))
    assert len(plain) == 96
    assert plain[-32:] == bytes([32]) * 32
    assert robot.decrypt(*signed(robot, robot.encrypt(msg))) == msg


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["", SAMPLE_CORP]))
def test_any_message_round_trips(message: bytes, receive_id: str) -> None:
    c = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, receive_id)
    assert c.decrypt(*signed(c, c.encrypt(message))) == message


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=200) | st.just(b"garbage"), min_size=2, max_size=8))
def test_one_crypto_decrypts_messages_one_after_another_as_fresh_ones_would(messages: list[bytes]) -> None:
    """Its decryption context is reused from one message to the next (and after a refused one): each message reads
    as it would with a crypto of its own."""
    c = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)
    for message in messages:
        if message == b"garbage":  # whole AES blocks that decrypt to nonsense: refused, and the next one still reads
            junk = base64.b64encode(b"\x07" * 48).decode()
            assert error_code(lambda junk=junk: c.decrypt(*signed(c, junk))) == "decrypt_failed"
            continue
        encrypt = c.encrypt(message)
        assert c.decrypt(*signed(c, encrypt)) == message
        # every block, the random prefix included, as a fresh AES-CBC context reads it
        assert c._decrypt_blocks(base64.b64decode(encrypt)) == raw_decrypt(SAMPLE_KEY, encrypt)


def test_random_prefix_differs_between_messages(sample: CallbackCrypto) -> None:
    assert sample.encrypt(b"same") != sample.encrypt(b"same")


# -- interop with wechatpy ------------------------------------------------------------------------------------------


def test_wechatpy_reads_our_reply_and_we_read_its(sample: CallbackCrypto) -> None:
    import xmltodict
    from wechatpy.enterprise.crypto import WeChatCrypto

    theirs = WeChatCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)
    ours = sample.encrypt_xml_reply("<xml><Content>hi</Content></xml>", "12345", "1700000000")
    reply = xmltodict.parse(ours)["xml"]
    assert theirs.decrypt_message(ours, reply["MsgSignature"], "1700000000", "12345") == (
        "<xml><Content>hi</Content></xml>"
    )
    their_reply = xmltodict.parse(theirs.encrypt_message("<xml>x</xml>", "777", "1700000001"))["xml"]
    assert sample.decrypt(their_reply["MsgSignature"], "1700000001", "777", their_reply["Encrypt"]) == b"<xml>x</xml>"


def test_wechatpy_with_an_empty_receive_id_reads_robot_frames(robot: CallbackCrypto) -> None:
    from wechatpy.crypto import PrpCrypto

    key = base64.b64decode(ROBOT_KEY + "=")
    assert PrpCrypto(key).decrypt(robot.encrypt(b'{"a":1}'), "") == '{"a":1}'


# -- signatures -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [None, ""])
def test_missing_signature(sample: CallbackCrypto, sig: str | None) -> None:
    assert error_code(lambda: sample.decrypt(sig, SAMPLE_POST_TS, SAMPLE_POST_NONCE, SAMPLE_ENCRYPT)) == (
        "missing_signature"
    )
    assert error_code(lambda: sample.verify_url(sig, "1", "2", SAMPLE_VERIFY["echostr"])) == "missing_signature"


@pytest.mark.parametrize(("ts", "nonce"), [(None, "n"), ("1", None), ("", "n")])
def test_missing_timestamp_or_nonce(sample: CallbackCrypto, ts: str | None, nonce: str | None) -> None:
    assert error_code(lambda: sample.decrypt(SAMPLE_POST_SIG, ts, nonce, SAMPLE_ENCRYPT)) == "missing_signature"


@pytest.mark.parametrize(
    "sig",
    [
        "0" * 40,
        SAMPLE_POST_SIG.upper(),
        SAMPLE_POST_SIG[:-1],
        SAMPLE_POST_SIG + "0",
        " " + SAMPLE_POST_SIG,
        "é" * 40,  # non-ASCII: hmac.compare_digest on str would raise TypeError
        "\ud800" + SAMPLE_POST_SIG[1:],  # lone surrogate
    ],
)
def test_forged_signature(sample: CallbackCrypto, sig: str) -> None:
    assert error_code(lambda: sample.decrypt(sig, SAMPLE_POST_TS, SAMPLE_POST_NONCE, SAMPLE_ENCRYPT)) == (
        "bad_signature"
    )


@pytest.mark.parametrize("field", ["timestamp", "nonce", "encrypt"])
def test_altered_request_fails_the_signature(sample: CallbackCrypto, field: str) -> None:
    args = {"msg_signature": SAMPLE_POST_SIG, "timestamp": SAMPLE_POST_TS, "nonce": SAMPLE_POST_NONCE}
    args["encrypt"] = SAMPLE_ENCRYPT
    args[field] = args[field][:-2] + ("1" if args[field][-2] != "1" else "2") + args[field][-1]
    assert error_code(lambda: sample.decrypt(**args)) == "bad_signature"


def test_other_token_fails_the_signature() -> None:
    other = CallbackCrypto("another-token", SAMPLE_KEY, SAMPLE_CORP)
    assert error_code(lambda: other.verify_url(**SAMPLE_VERIFY)) == "bad_signature"


def test_signature_compared_in_constant_time(sample: CallbackCrypto, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(crypto_module.hmac, "compare_digest", spy)
    sample.decrypt(SAMPLE_POST_SIG, SAMPLE_POST_TS, SAMPLE_POST_NONCE, SAMPLE_ENCRYPT)
    assert (SAMPLE_POST_SIG.encode(), SAMPLE_POST_SIG.encode()) in calls


def test_nothing_is_decrypted_before_the_signature_holds(sample: CallbackCrypto) -> None:
    """Garbage with a wrong signature reports the signature, not the garbage: no padding oracle."""
    assert error_code(lambda: sample.decrypt("0" * 40, "1", "2", "!!!not base64")) == "bad_signature"


# -- decryption failures --------------------------------------------------------------------------------------------


def test_message_for_another_corp(sample: CallbackCrypto) -> None:
    other_corp = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, "wwdeadbeefdeadbeef")
    with pytest.raises(CallbackCryptoError) as info:
        sample.decrypt(*signed(other_corp, other_corp.encrypt(b"<xml/>")))
    assert info.value.code == "wrong_receiver"
    assert "wwdeadbeefdeadbeef" in info.value.message


def test_robot_rejects_an_app_message_and_the_app_a_robot_message(robot: CallbackCrypto) -> None:
    app = CallbackCrypto(ROBOT_TOKEN, ROBOT_KEY, SAMPLE_CORP)
    assert error_code(lambda: robot.decrypt(*signed(app, app.encrypt(b"{}")))) == "wrong_receiver"
    assert error_code(lambda: app.decrypt(*signed(robot, robot.encrypt(b"{}")))) == "wrong_receiver"


def test_robot_rejects_tencents_corp_vector() -> None:
    robot = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, "")
    code = error_code(lambda: robot.decrypt(SAMPLE_POST_SIG, SAMPLE_POST_TS, SAMPLE_POST_NONCE, SAMPLE_ENCRYPT))
    assert code == "wrong_receiver"


@pytest.mark.parametrize(
    "encrypt",
    [
        "!!!!",  # not base64
        "Kl7k jo==",  # whitespace
        "Kl7kjoSf6DMD1zh7",  # valid base64, 12 bytes
        SAMPLE_ENCRYPT[:-24],  # truncated, not whole blocks / broken padding of the base64
        base64.b64encode(base64.b64decode(SAMPLE_ENCRYPT)[:-16]).decode(),  # last AES block dropped
        base64.b64encode(base64.b64decode(SAMPLE_ENCRYPT)[:33]).decode(),  # not a multiple of 16
        "中文",  # non-ASCII
    ],
)
def test_garbage_or_truncated_ciphertext(sample: CallbackCrypto, encrypt: str) -> None:
    assert error_code(lambda: sample.decrypt(*signed(sample, encrypt))) == "decrypt_failed"


def test_wrong_key_is_a_decrypt_failure() -> None:
    mine = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)
    wrong = CallbackCrypto(SAMPLE_TOKEN, DOC_KEY, SAMPLE_CORP, random_bytes=fixed(b"A" * 16))
    assert error_code(lambda: mine.decrypt(*signed(wrong, wrong.encrypt(b"<xml>hello</xml>")))) == "decrypt_failed"


def _frame(body: bytes, padding: bytes) -> str:
    return raw_encrypt(ROBOT_KEY, b"R" * 16 + body + padding)


@pytest.mark.parametrize(
    ("body", "padding"),
    [
        ((3).to_bytes(4, "big") + b"abc", b"\x00" * 9),  # pad byte 0
        ((3).to_bytes(4, "big") + b"abc" + b"\x00" * 8, b"\x21"),  # pad byte 33
        ((3).to_bytes(4, "big") + b"abc", b"\x07" * 8 + b"\x09"),  # inconsistent pad bytes
        ((3).to_bytes(4, "big") + b"abc", b"\x09" * 8 + b"\x0a"),  # pad longer than run
    ],
)
def test_bad_padding(robot: CallbackCrypto, body: bytes, padding: bytes) -> None:
    assert len(body + padding) % 16 == 0
    assert error_code(lambda: robot.decrypt(*signed(robot, _frame(body, padding)))) == "decrypt_failed"


def test_length_field_beyond_the_frame(robot: CallbackCrypto) -> None:
    """wechatpy 1.8.18 accepts this frame for an empty receive id (as a truncated message); we do not."""
    body = (60).to_bytes(4, "big") + b"short"
    pad = 32 - (16 + len(body)) % 32
    assert error_code(lambda: robot.decrypt(*signed(robot, _frame(body, bytes([pad]) * pad)))) == "decrypt_failed"


def test_frame_too_short_for_its_length_field(robot: CallbackCrypto) -> None:
    assert error_code(lambda: robot.decrypt(*signed(robot, _frame(b"\x00\x00", bytes([14]) * 14)))) == (
        "decrypt_failed"
    )


def test_non_utf8_echostr_plaintext(sample: CallbackCrypto) -> None:
    echostr = sample.encrypt(b"\xff\xfe")
    assert error_code(lambda: sample.verify_url(*signed(sample, echostr))) == "decrypt_failed"


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_echostr_or_encrypt(sample: CallbackCrypto, missing: str | None) -> None:
    assert error_code(lambda: sample.verify_url("0" * 40, "1", "2", missing)) == "malformed"
    assert error_code(lambda: sample.decrypt("0" * 40, "1", "2", missing)) == "malformed"


def test_plus_repair_only_for_echostr(sample: CallbackCrypto) -> None:
    """The POST body's encrypt is never repaired: a space there is garbage, after a valid signature over it."""
    mangled = SAMPLE_ENCRYPT.replace("+", " ")
    assert error_code(lambda: sample.decrypt(*signed(sample, mangled))) == "decrypt_failed"


# -- construction and replies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "key"),
    [("", SAMPLE_KEY), ("t", SAMPLE_KEY[:-1]), ("t", SAMPLE_KEY + "A"), ("t", SAMPLE_KEY[:-1] + "!")],
)
def test_bad_configuration(token: str, key: str) -> None:
    with pytest.raises(ValueError, match=r"token|EncodingAESKey"):
        CallbackCrypto(token, key, SAMPLE_CORP)


def test_random_bytes_must_give_16(sample: CallbackCrypto) -> None:
    short = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP, random_bytes=lambda n: b"x")
    with pytest.raises(ValueError, match="16 bytes"):
        short.encrypt(b"x")


@pytest.mark.parametrize(("nonce", "ts"), [("a]]>b", "1"), ("", "1"), ("n", "1.5"), ("n", ""), ("n<", "1")])
def test_reply_parameters_are_checked(sample: CallbackCrypto, nonce: str, ts: str) -> None:
    assert error_code(lambda: sample.encrypt_xml_reply("<xml/>", nonce, ts)) == "malformed"
    assert error_code(lambda: sample.encrypt_json_reply({}, nonce, ts)) == "malformed"


@pytest.mark.parametrize("payload", [{"a": {1, 2}}, {"a": float("nan")}])
def test_json_reply_payload_must_be_json(robot: CallbackCrypto, payload: dict[str, object]) -> None:
    assert error_code(lambda: robot.encrypt_json_reply(payload, "n", "1")) == "malformed"


def test_receive_id_property() -> None:
    assert CallbackCrypto("t", SAMPLE_KEY, "").receive_id == ""
    assert CallbackCrypto("t", SAMPLE_KEY, SAMPLE_CORP).receive_id == SAMPLE_CORP


# -- timestamp window -----------------------------------------------------------------------------------------------

NOW = datetime(2026, 5, 6, 10, 0, tzinfo=TZ)


def test_timestamp_inside_the_window() -> None:
    ts = str(int(NOW.timestamp()) - 30)
    assert check_timestamp(ts, now=NOW) == NOW - timedelta(seconds=30)


@pytest.mark.parametrize(
    "ts", [str(int(NOW.timestamp()) - 301), str(int(NOW.timestamp()) + 301), "-5", "12a", "1" * 21, "9" * 20]
)
def test_timestamp_outside_the_window_or_garbage(ts: str) -> None:
    assert error_code(lambda: check_timestamp(ts, now=NOW)) == "bad_timestamp"


def test_timestamp_missing() -> None:
    assert error_code(lambda: check_timestamp(None, now=NOW)) == "missing_signature"


# -- raw query values -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("echostr=a+b%2Bc%3D%3D&nonce=1", "echostr", "a+b+c=="),
        ("?echostr=a%2Fb", "echostr", "a/b"),
        ("nonce=1", "echostr", None),
        ("echostr&nonce=1", "echostr", ""),
        ("echostr=&nonce=1", "echostr", ""),
        ("echostr=first&echostr=second", "echostr", "first"),
        ("a=1&&msg_signature=abc", "msg_signature", "abc"),
        ("", "x", None),
        ("x=%E4%BD%A0", "x", "你"),
    ],
)
def test_raw_query_param(query: str, name: str, expected: str | None) -> None:
    assert raw_query_param(query, name) == expected


def test_aiohttp_raw_query_string_keeps_plus() -> None:
    from yarl import URL

    url = URL("/wecom/callback?" + DOC_VERIFY_QUERY.replace("%2B", "+", 1))
    assert url.query["echostr"].count(" ") == 1  # what request.query gives
    assert "+" in (raw_query_param(url.raw_query_string, "echostr") or "")
