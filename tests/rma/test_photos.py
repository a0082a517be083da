"""Fault photos (rma/services/photos.py): JPEG or PNG by content, 5 MB, 3 per item."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from rma.services.photos import PhotoError, check_photo, display_name

EN = {"Accept-Language": "en"}
MB5 = 5 * 1024 * 1024


def image_bytes(fmt: str, size=(16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, fmt)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that claims a huge size (a pixel bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.fixture
def rq(app):
    with app.test_request_context(headers=EN):
        yield app


@pytest.mark.parametrize("name, fmt, content_type", [
    ("front.jpg", "JPEG", "image/jpeg"),
    ("front.png", "PNG", "image/png"),
    ("front.jpg", "PNG", "image/png"),  # the name says JPEG, the bytes say PNG: fine
    ("IMG_0001", "JPEG", "image/jpeg"),
])
def test_photo_accepted_by_content(rq, name, fmt, content_type):
    data = image_bytes(fmt)
    photo = check_photo(name, data)
    assert (photo.filename, photo.content_type, photo.size) == (name, content_type, len(data))
    import hashlib

    assert photo.sha256 == hashlib.sha256(data).hexdigest() and photo.data == data


@pytest.mark.parametrize("name, data", [
    ("notes.png", b"just some text, not a picture\n"),
    ("empty.jpg", b""),
    ("anim.png", image_bytes("GIF")),
    ("bitmap.jpg", image_bytes("BMP")),
    ("cut.png", image_bytes("PNG")[:40]),  # truncated
    ("bad-crc.png", image_bytes("PNG")[:-5] + b"XXXXX"),
    ("fake.jpg", b"\xff\xd8\xff" + b"\x00" * 100),  # JPEG signature, no JPEG
    ("mixed.jpg", b"\xff\xd8\xff" + image_bytes("PNG")[3:]),
    ("bomb.png", png_header_only(20000, 20000)),
    ("big.png", png_header_only(10000, 9000)),  # over the pixel limit
])
def test_photo_refused_by_content(rq, name, data):
    with pytest.raises(PhotoError) as caught:
        check_photo(name, data)
    assert caught.value.code == "bad_photo"
    assert caught.value.message == f"{name} is not a JPEG or PNG photo."


def test_photo_of_5_mb_passes_and_one_byte_more_is_refused(rq):
    png = image_bytes("PNG")
    exactly = png + b"\x00" * (MB5 - len(png))  # data after IEND is ignored by decoders
    assert check_photo("a.png", exactly).size == MB5
    with pytest.raises(PhotoError) as caught:
        check_photo("b.png", exactly + b"\x00")
    assert caught.value.code == "photo_too_large"
    assert caught.value.message == "b.png is larger than 5 MB."


def test_photo_size_limit_is_a_setting(rq):
    rq.config["PHOTO_MAX_BYTES"] = 100
    with pytest.raises(PhotoError) as caught:
        check_photo("a.jpg", image_bytes("JPEG"))
    assert caught.value.code == "photo_too_large"


@pytest.mark.parametrize("raw, expected", [
    ("../../etc/passwd.png", "passwd.png"),
    ("C:\\Users\\li\\Desktop\\故障.jpg", "故障.jpg"),
    ("a\x00b\r\nc.png", "abc.png"),
    ('<script>"x".png', "scriptx.png"),
    ("   ", "photo"),
    ("", "photo"),
    (None, "photo"),
    ("x" * 300 + ".jpeg", "x" * 195 + ".jpeg"),
])
def test_display_name_is_sanitised(raw, expected):
    assert display_name(raw) == expected
    assert len(display_name(raw)) <= 200


def test_nameless_photo_gets_a_name_from_its_format(rq):
    assert check_photo("", image_bytes("PNG")).filename == "photo.png"
    assert check_photo("../", image_bytes("JPEG")).filename == "photo.jpg"


def test_R_R1_photos_per_item_through_the_form_check(app, make_model, make_customer,
                                                     make_user):
    from rma.services.rmas import ItemInput, PhotoInput, check_items
    from tests.rma.test_rmas import build_world

    world = build_world(app, make_model, make_customer, make_user)
    jpg = PhotoInput("a.jpg", image_bytes("JPEG"))
    with app.test_request_context(headers=EN):
        checks = check_items(world["a"], [
            ItemInput("TK3-A0001", "x", None, (jpg,) * 3),
            ItemInput("TK3-A0002", "x", None, (jpg,) * 4),
            ItemInput("TK3-A0003", "x", None, (jpg, PhotoInput("n.png", b"text"))),
        ])
    assert checks[0].problems == ()
    assert [(p.field, p.code, p.message) for p in checks[1].problems] == [
        ("photos", "too_many_photos", "At most 3 photos per unit.")]
    assert [(p.field, p.code) for p in checks[2].problems] == [("photos", "bad_photo")]
