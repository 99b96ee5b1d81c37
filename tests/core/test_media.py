"""Image preparation (what Kling receives is always a compliant raw-base64 JPEG/PNG) and
video probing with PyAV."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from kling_elements import media, validate
from kling_elements.errors import ValidationError
from kling_elements.validate import IMAGE_MAX_BYTES


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(w: int, h: int, mode: str = "RGB") -> Image.Image:
    xs = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    ys = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    rgb = np.stack([xs + 0 * ys, ys + 0 * xs, (xs + ys) / 2], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if mode == "RGBA":
        image.putalpha(Image.fromarray(np.full((h, w), 128, np.uint8), "L"))
    return image


def decode(result: str) -> tuple[bytes, Image.Image]:
    assert isinstance(result, str)
    assert not result.startswith("data:")
    raw = base64.b64decode(result, validate=True)
    image = Image.open(io.BytesIO(raw))
    image.load()
    return raw, image


def test_compliant_png_passes_through_unchanged(tmp_path):
    data = encode(gradient(400, 300), "PNG")
    assert media.prepare_image(data) == base64.b64encode(data).decode("ascii")
    path = tmp_path / "ref.png"
    path.write_bytes(data)
    assert media.prepare_image(path) == base64.b64encode(data).decode("ascii")
    assert media.prepare_image(str(path)) == base64.b64encode(data).decode("ascii")


def test_compliant_jpeg_passes_through_unchanged():
    data = encode(gradient(640, 480), "JPEG", quality=80)
    assert base64.b64decode(media.prepare_image(data)) == data


@pytest.mark.parametrize(
    ("fmt", "mode", "expected_format"),
    [
        ("WEBP", "RGB", "JPEG"),
        ("WEBP", "RGBA", "PNG"),
        ("BMP", "RGB", "JPEG"),
        ("TIFF", "RGB", "JPEG"),
        ("GIF", "RGB", "JPEG"),
    ],
)
def test_other_formats_are_reencoded(fmt, mode, expected_format):
    original = gradient(400, 320, mode)
    data = encode(original, fmt)
    raw, image = decode(media.prepare_image(data))
    assert raw != data
    assert image.format == expected_format
    assert image.size == (400, 320)
    assert (image.mode == "RGBA") == (expected_format == "PNG")


def test_palette_image_with_transparency_keeps_its_alpha():
    image = gradient(400, 400).convert("P")
    image.info["transparency"] = 0
    _, out = decode(media.prepare_image(encode(image, "GIF", transparency=0)))
    assert out.format == "PNG" and out.mode == "RGBA"


def test_an_oversized_png_is_reencoded_under_the_limit():
    noise = np.random.default_rng(1).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise, "RGB"), "PNG", compress_level=0)
    assert len(data) > 11 * 2**20
    raw, image = decode(media.prepare_image(data))
    assert len(raw) <= IMAGE_MAX_BYTES
    assert image.format == "JPEG"


@pytest.mark.slow
def test_an_oversized_jpeg_is_shrunk_under_the_limit_keeping_its_aspect():
    noise = np.random.default_rng(2).integers(0, 256, (3400, 3500, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise, "RGB"), "JPEG", quality=95)
    assert len(data) > 11 * 2**20
    raw, image = decode(media.prepare_image(data))
    assert len(raw) <= IMAGE_MAX_BYTES
    assert image.format == "JPEG"
    w, h = image.size
    assert w < 3500 and min(w, h) >= 300
    assert w / h == pytest.approx(3500 / 3400, rel=0.01)


@pytest.mark.parametrize(
    ("size", "fragments"),
    [
        ((299, 400), ["299x400", "300 px"]),
        ((400, 299), ["400x299", "300 px"]),
        ((780, 300), ["2.60:1", "2.5"]),
        ((300, 780), ["0.38:1", "2.5"]),
    ],
)
def test_geometry_a_human_must_fix_is_refused(size, fragments):
    with pytest.raises(ValidationError) as exc:
        media.prepare_image(encode(gradient(*size), "PNG"), label="image 1")
    text = str(exc.value)
    assert "image 1" in text
    for fragment in fragments:
        assert fragment in text


@pytest.mark.parametrize("size", [(300, 300), (750, 300), (300, 750)])
def test_geometry_at_the_limits_is_accepted(size):
    data = encode(gradient(*size), "PNG")
    assert base64.b64decode(media.prepare_image(data)) == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        encode(gradient(400, 400), "PNG")[:3000],
    ],
    ids=["empty", "text", "png-magic-only", "truncated-png"],
)
def test_corrupt_bytes_are_refused(data):
    with pytest.raises(ValidationError, match="not a readable image"):
        media.prepare_image(data)


def test_data_url_is_refused():
    png = encode(gradient(400, 400), "PNG")
    data_url = b"data:image/png;base64," + base64.b64encode(png)
    with pytest.raises(ValidationError, match="data: URL"):
        media.prepare_image(data_url)
    with pytest.raises(ValidationError, match="data: URL"):
        media.prepare_image(data_url.decode("ascii"))


def test_a_base64_string_instead_of_a_path_is_refused_cleanly():
    b64 = base64.b64encode(encode(gradient(400, 400), "PNG")).decode("ascii")
    with pytest.raises(ValidationError, match="does not exist") as exc:
        media.prepare_image(b64)
    assert len(str(exc.value)) < 300


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        media.prepare_image(tmp_path / "nope.png")


def test_a_missing_file_deep_in_folders_is_named_by_its_file_name(tmp_path):
    deep = tmp_path.joinpath(*["a-long-folder-name"] * 8) / "star-reference.png"
    with pytest.raises(ValidationError, match=r"star-reference\.png' does not exist") as exc:
        media.prepare_image(deep)
    assert len(str(exc.value)) < 140


@pytest.mark.parametrize(("mode", "expected_format"), [("RGB", "JPEG"), ("RGBA", "PNG"),
                                                        ("L", "JPEG")])
def test_pil_images_are_accepted(mode, expected_format):
    original = gradient(500, 400, "RGBA" if mode == "RGBA" else "RGB").convert(mode)
    _, image = decode(media.prepare_image(original))
    assert image.format == expected_format
    assert image.size == (500, 400)


def test_pil_image_geometry_is_checked_too():
    with pytest.raises(ValidationError, match="300 px"):
        media.prepare_image(gradient(200, 400))


# -- probe --------------------------------------------------------------------------------

av = pytest.importorskip("av")


def write_clip(path, *, width=720, height=720, fps=24, frames=48):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            pixels = np.full((height, width, 3), (i * 5) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_probe_reads_a_compliant_clip(clip):
    info = media.probe(clip)
    assert info.container == "mp4"
    assert (info.width, info.height) == (720, 720)
    assert info.fps == pytest.approx(24.0)
    assert info.frame_count == 48
    assert info.duration_s == pytest.approx(2.0, abs=1e-6)
    assert validate.video_problems(info) == []


def test_probe_reports_what_validation_refuses(tmp_path):
    info = media.probe(write_clip(tmp_path / "small.mov", width=320, height=240, fps=25,
                                  frames=10))
    assert info.container == "mov"
    assert (info.width, info.height, info.frame_count) == (320, 240, 10)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(0.4, abs=1e-6)
    problems = " ".join(validate.video_problems(info))
    for fragment in ("0.400 s", "width 320", "height 240", "25 fps"):
        assert fragment in problems


def test_probe_refuses_an_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValidationError, match="empty"):
        media.probe(empty)


def test_probe_refuses_a_file_that_is_not_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(ValidationError, match="cannot be read"):
        media.probe(text)


def test_probe_refuses_a_missing_file(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        media.probe(tmp_path / "missing.mp4")


@pytest.mark.parametrize("fps", [24, 25, 29.97, 30, 60])
def test_mp4_frame_rate_reads_the_index_like_pyav(tmp_path, fps):
    from kling_elements.media import mp4_frame_rate
    from kling_elements.sandbox.video import write_mp4

    path = tmp_path / "clip.mp4"
    write_mp4(path, np.zeros((6, 64, 64, 3), np.uint8), fps)
    assert mp4_frame_rate(path) == pytest.approx(media.probe(path).fps, rel=1e-6)
    assert mp4_frame_rate(path) == pytest.approx(fps, rel=1e-3)
    assert media.mp4_frame_count(path) == media.probe(path).frame_count == 6


def test_mp4_frame_rate_is_none_for_non_mp4(tmp_path):
    from kling_elements.media import mp4_frame_rate

    (tmp_path / "x.mp4").write_bytes(b"not a movie at all")
    assert mp4_frame_rate(tmp_path / "x.mp4") is None
    assert mp4_frame_rate(tmp_path / "missing.mp4") is None
    assert media.mp4_frame_count(tmp_path / "x.mp4") is None
