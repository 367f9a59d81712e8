#!/usr/bin/env python3
"""Writes the hand-made seed inputs of tests/fuzz/corpus/ (except x509/, real certificates).

Run from anywhere: python3 tests/fuzz/corpus/make_seeds.py. Files found by fuzzing (crashes,
interesting inputs) are committed next to these under their own names and are not touched here.
"""
import gzip
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


# ---- jsonrpc and dispatch: requests the methods know, and near misses ----
REQS = {
    "hello": '{"jsonrpc":"2.0","id":1,"method":"system.hello"}',
    "hello_params": '{"jsonrpc":"2.0","id":"a","method":"system.hello","params":{}}',
    "subscribe": '{"jsonrpc":"2.0","id":2,"method":"system.subscribe","params":{"events":["token.added","token.removed"]}}',
    "cert_list": '{"jsonrpc":"2.0","id":3,"method":"cert.list","params":{}}',
    "keys_list": '{"jsonrpc":"2.0","id":4,"method":"keys.list"}',
    "sign": '{"jsonrpc":"2.0","id":5,"method":"keys.sign","params":{"key_id":"9a","pin":"123456","digest":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","hash":"sha256","scheme":"ecdsa"}}',
    "pin_verify": '{"jsonrpc":"2.0","id":6,"method":"keys.verify_pin","params":{"key_id":"9a","pin":"12345678"}}',
    "notification": '{"jsonrpc":"2.0","method":"system.hello"}',
    "response": '{"jsonrpc":"2.0","id":7,"result":{"ok":true}}',
    "error_response": '{"jsonrpc":"2.0","id":8,"error":{"code":-32000,"message":"x"}}',
    "bad_version": '{"jsonrpc":"1.0","id":1,"method":"system.hello"}',
    "batch": '[{"jsonrpc":"2.0","id":1,"method":"system.hello"}]',
    "unknown_param": '{"jsonrpc":"2.0","id":1,"method":"system.hello","params":{"x":1}}',
    "big_id": '{"jsonrpc":"2.0","id":9007199254740993,"method":"system.hello"}',
    "float_id": '{"jsonrpc":"2.0","id":1.5e3,"method":"system.hello"}',
    "deep": '{"jsonrpc":"2.0","id":1,"method":"x","params":' + "[" * 40 + "]" * 40 + "}",
    "utf8": '{"jsonrpc":"2.0","id":"\u4e2d\u6587","method":"system.hello","params":{"pin":"\\u0000\\ud800"}}',
    "trailing": '{"jsonrpc":"2.0","id":1,"method":"system.hello"} {}',
    "dup_keys": '{"jsonrpc":"2.0","id":1,"id":2,"method":"system.hello"}',
    "params_array": '{"jsonrpc":"2.0","id":1,"method":"keys.list","params":[1,true,null,"a"]}',
    "not_json": "not json",
    "empty": "",
}
for name, text in REQS.items():
    put("jsonrpc", name, text)
    put("dispatch", name, text)
put("jsonrpc", "invalid_utf8", b'{"jsonrpc":"2.0","id":"\xff\xfe","method":"a"}')

# ---- config ----
CONFIGS = {
    "empty_object": "{}",
    "full": """{
  "origins": ["https://portal.example.cn", "http://127.0.0.1:8080", "https://[2001:db8::1]"],
  "extension_ids": ["abcdefghijklmnopabcdefghijklmnop"],
  "wss_port": 28473,
  "wss_fallback_ports": [28474, 28475, 38473],
  "socket": "~/ukeyd.sock",
  "state_dir": "state",
  "runtime_dir": "/run/user/1000/ukeyd",
  "log_level": "debug",
  "expiring_days": 14,
  "piv_management_key": "010203040506070801020304050607080102030405060708",
  "piv_allow_default_management_key": false,
  "limits": {"message_size": 65536, "json_depth": 32, "pending_per_connection": 16,
             "connections": 64, "requests_per_second_per_origin": 50}
}""",
    "wss_off": '{"wss_port": 0}',
    "typo_key": '{"orgins": ["https://a.example"]}',
    "bad_origin": '{"origins": ["https://Portal.Example.cn/"]}',
    "bad_extension": '{"extension_ids": ["ABC"]}',
    "aes_key": '{"piv_management_key": "00112233445566778899aabbccddeeff"}',
    "odd_key": '{"piv_management_key": "0011223"}',
    "limits_out_of_range": '{"limits": {"json_depth": 1000}}',
    "not_object": "[1,2,3]",
    "port_string": '{"wss_port": "28473"}',
    "many_ports": '{"wss_fallback_ports": [1,2,3,4,5,6,7,8,9,10]}',
}
for name, text in CONFIGS.items():
    put("config", name, text)

# ---- origin: origins and Host values, valid and not ----
ORIGINS = [
    "https://portal.example.cn", "https://portal.example.cn:8443", "http://127.0.0.1:8080",
    "https://[2001:db8::1]", "https://[::1]", "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
    "https://xn--fiqs8s.example", "null", "https://Portal.example.cn", "https://portal.example.cn/",
    "https://portal.example.cn.", "https://portal.example.cn:443", "https://127.1",
    "https://0x7f.0.0.1", "https://user@portal.example.cn", "https://portal.example.cn:08443",
    "https://[2001:DB8::1]", "https://-bad.example", "https://a..b", " https://a.example",
    "127.0.0.1:28473", "localhost:28473", "LOCALHOST:28473", "[::1]:28473",
    "abcdefghijklmnopabcdefghijklmnop", "https://%70ortal.example.cn",
]
for i, o in enumerate(ORIGINS):
    put("origin", "o%02d" % i, o)
put("origin", "host_port_prefix", b"\x6f\x39127.0.0.1:28473")
put("origin", "embedded_nul", b"https://a.example\x00.evil")
put("origin", "non_ascii", "https://\u4e2d\u6587.example")

# ---- frame: byte 0 is max/16, then length-prefixed frames ----
def frame(body):
    return struct.pack("<I", len(body)) + body

put("frame", "two_frames", b"\x10" + frame(b'{"a":1}') + frame(b""))
put("frame", "over_max", b"\x01" + frame(b"x" * 64))
put("frame", "truncated_header", b"\x10\x05\x00")
put("frame", "truncated_body", b"\x10" + struct.pack("<I", 100) + b"abc")
put("frame", "huge_length", b"\xff" + b"\xff\xff\xff\xff")
put("frame", "zero_max", b"\x00" + frame(b"") + frame(b"a"))

# ---- tlv ----
put("tlv", "cert_object", bytes.fromhex("53 0c 70 05 30 03 02 01 01 71 01 00 fe 00".replace(" ", "")))
put("tlv", "long_forms", bytes.fromhex("5381820004deadbeef 7f4983000002 aabb".replace(" ", "")))
put("tlv", "three_byte_tag", bytes.fromhex("5fc1020401020304 5fff550100".replace(" ", "")))
put("tlv", "nested", bytes.fromhex("7c0a 8200 8104 01020304 7900".replace(" ", "")))
put("tlv", "bad_length", bytes.fromhex("53 84 00 00 00 01 00".replace(" ", "")))
put("tlv", "tag_too_long", bytes.fromhex("1f 81 81 01 00".replace(" ", "")))
put("tlv", "value_past_end", bytes.fromhex("53 05 01 02".replace(" ", "")))

# ---- piv: scripted card answers (see fuzz_piv.c for the format) ----
def ans(data=b"", sw=0x9000):
    r = data + struct.pack(">H", sw)
    return struct.pack(">H", len(r)) + r

def script(atr_sel, ops, answers):
    return bytes([atr_sel, ops]) + b"".join(answers)

with open(os.path.join(HERE, "x509", "p256_ca.der"), "rb") as f:
    CERT = f.read()

def cert_object(der, compressed=False):
    body = gzip.compress(der, mtime=0) if compressed else der
    inner = b"\x70" + tlv_len(len(body)) + body + b"\x71\x01" + (b"\x01" if compressed else b"\x00") + b"\xfe\x00"
    return b"\x53" + tlv_len(len(inner)) + inner

def tlv_len(n):
    if n < 0x80:
        return bytes([n])
    if n <= 0xff:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xff])

SELECT = ans(bytes.fromhex("610f4f0600001000010079044f02a000"), 0x9000)
VERSION = ans(b"\x05\x07\x01")
SERIAL = ans(b"\x01\x23\x45\x67")
ABSENT = ans(b"", 0x6A82)

# Vendor card: SELECT, VERSION, SERIAL, list_certs = SELECT + 24 GET DATA (9a has a certificate).
vendor = [SELECT, VERSION, SERIAL, SELECT, ans(cert_object(CERT))] + [ABSENT] * 23
put("piv", "vendor_one_cert", script(0, 0x00, vendor))
put("piv", "vendor_gzip_cert", script(0, 0x00, [SELECT, VERSION, SERIAL, SELECT,
                                                 ans(cert_object(CERT, True))] + [ABSENT] * 23))
# Plain card without extended length: no VERSION, CHUID for the serial, 61xx chaining.
# CHUID: FASC-N (30) and GUID (34); the serial comes from them.
chuid = b"\x53" + bytes([len(bytes.fromhex("3010" + "11" * 16 + "3410" + "22" * 16))]) + bytes.fromhex("3010" + "11" * 16 + "3410" + "22" * 16)
obj = cert_object(CERT)
chunks = [obj[i:i + 200] for i in range(0, len(obj), 200)]
chained = []
for i, c in enumerate(chunks):
    left = sum(len(x) for x in chunks[i + 1:])
    chained.append(ans(c, 0x9000 if left == 0 else 0x6100 | min(left, 0xff)))
plain = [SELECT, ans(b"", 0x6D00), ans(chuid), SELECT] + chained + [ABSENT] * 23
put("piv", "plain_chained", script(31, 0x00, plain))
# Everything else after open: pin status, verify, sign, staging, public key, record, caps.
ecdsa = b"\x7c\x4a\x82\x48" + bytes.fromhex("3046022100" + "11" * 32 + "022100" + "22" * 32)
meta = bytes.fromhex("010111") + b"\x04\x43" + b"\x86\x41\x04" + b"\x33" * 64
rest = [SELECT, ans(b"", 0x63C3), SELECT, ans(), ans(meta), ans(ecdsa)]
put("piv", "vendor_all_ops", script(0, 0xFF, vendor + rest + [ABSENT] * 40))
put("piv", "not_piv", script(31, 0x01, [ans(b"", 0x6A82)]))
put("piv", "removed_mid_list", script(0, 0x00, [SELECT, VERSION, SERIAL, SELECT,
                                                 ans(cert_object(CERT)), b"\x00\x00"]))
put("piv", "odd_atr", bytes([5, 0x00]) + bytes.fromhex("3b80800101") + ans() + ans(b"", 0x6D00))
