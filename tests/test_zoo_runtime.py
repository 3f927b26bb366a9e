"""Zoo generation on onnxruntime alone: no torch import, providers, pictures, bad input."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from PIL import Image

from ganbench.cli import cli
from ganbench.errors import UsageError, ZooError
from ganbench.images import grid, square_rows, to_uint8
from ganbench.zoo.index import bundled_index
from ganbench.zoo.metadata import GeneratorInfo
from ganbench.zoo.runtime import latents, open_generator, parse_arithmetic, walk


@pytest.fixture
def onnx_file(zoo_export):
    out, _ = zoo_export
    return out / "tiny-digits.onnx"


def _invoke(*args):
    return CliRunner().invoke(cli, ["zoo", *args])


NO_TORCH = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "mlflow"):
            raise ImportError("the zoo runtime must not import " + name)

sys.meta_path.insert(0, Refuse())
from ganbench.cli import cli

for args in {commands!r}:
    try:
        cli(args, standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "mlflow"))
print("LOADED", loaded)
"""


def test_sample_interpolate_arithmetic_never_import_torch(onnx_file, tmp_path):
    """A fresh interpreter in which importing torch, torchvision or MLflow fails."""
    f = str(onnx_file)
    commands = [
        ["zoo", "sample", f, "-n", "9", "-o", str(tmp_path / "s.png"), "--nrow", "3"],
        ["zoo", "interpolate", f, "--steps", "5", "--rows", "2", "-o", str(tmp_path / "w.png")],
        ["zoo", "arithmetic", f, "0,1,2 - 3,4,5 + 6,7,8", "-o", str(tmp_path / "a.png")],
    ]
    code = textwrap.dedent(NO_TORCH).format(commands=commands)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    with Image.open(tmp_path / "s.png") as s, Image.open(tmp_path / "w.png") as w:
        assert s.size == (2 + 3 * 34, 2 + 3 * 34) and w.size == (2 + 5 * 34, 2 + 2 * 34)
    with Image.open(tmp_path / "a.png") as a:  # 3 rows of 3 + mean, the result + 8 variations
        assert a.size == (2 + 9 * 34, 2 + 4 * 34)


def test_sample_grid_holds_the_generated_pixels(onnx_file, tmp_path):
    out = tmp_path / "g.png"
    result = _invoke("sample", str(onnx_file), "-n", "5", "-o", str(out), "--seed", "3")
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    info = GeneratorInfo.from_props(session.get_modelmeta().custom_metadata_map, "t")
    z = np.random.default_rng(3).uniform(-1, 1, (5, 100)).astype(np.float32)
    expected = to_uint8(session.run(["images"], {"z": z})[0])
    with Image.open(out) as picture:
        pixels = np.asarray(picture)
    assert info.z_distribution == "uniform"
    for k in range(5):
        row, col = divmod(k, 8)
        cell = pixels[2 + row * 34 : 2 + row * 34 + 32, 2 + col * 34 : 2 + col * 34 + 32]
        np.testing.assert_array_equal(cell, expected[k, 0])


def test_latents_are_seeded_and_prefix_stable(onnx_file):
    info = open_generator(onnx_file, "cpu", say=lambda _: None).info
    many, few = latents(info, 64, 7), latents(info, 10, 7)
    np.testing.assert_array_equal(many[:10], few)  # index i is the same image for any -n
    assert many.dtype == np.float32 and many.min() >= -1 and many.max() <= 1
    assert not np.array_equal(latents(info, 10, 8), few)
    normal = GeneratorInfo(**{**info.__dict__, "z_distribution": "normal"})
    z = latents(normal, 4000, 0)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    np.testing.assert_array_equal(latents(normal, 5, 0), z[:5])


def _provider_that_runs(path) -> str:
    """What onnxruntime itself runs a session on when asked for CUDA first (when it lists
    CUDA) then the CPU: the first provider of a session made here, not by ganbench."""
    wanted = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        wanted.insert(0, "CUDAExecutionProvider")
        if hasattr(ort, "preload_dlls"):  # the nvidia-* wheels' CUDA and cuDNN, as documented
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
                ort.preload_dlls()
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=wanted).get_providers()[0]


def _torch_sees_a_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_auto_provider_says_which_ran_and_any_fallback_once(onnx_file, tmp_path):
    said = []
    generator = open_generator(onnx_file, "auto", say=said.append)
    ran = _provider_that_runs(onnx_file)
    assert generator.provider == ran
    if not _torch_sees_a_gpu():
        assert ran == "CPUExecutionProvider"  # no GPU: nothing else can have run
    if "CUDAExecutionProvider" in ort.get_available_providers() and ran != "CUDAExecutionProvider":
        assert len(said) == 1 and "running on the CPU" in said[0]  # the GPU build, no GPU
    else:
        assert said == []
    result = _invoke("sample", str(onnx_file), "-n", "1", "-o", str(tmp_path / "g.png"))
    assert result.exit_code == 0, result.output
    assert f"onnxruntime on {ran}" in result.output
    assert result.output.count("running on the CPU") == len(said)
    cpu = _invoke(
        "sample", str(onnx_file), "-n", "1", "-o", str(tmp_path / "c.png"), "--provider", "cpu"
    )
    assert "onnxruntime on CPUExecutionProvider" in cpu.output and "running on" not in cpu.output


def test_cuda_provider_on_a_machine_without_one_is_an_error(onnx_file):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:
            import torch

            if torch.cuda.is_available():
                pytest.skip("a GPU is present: the CUDA provider may start")
        except ImportError:
            pass
    with pytest.raises((ZooError, UsageError), match="--provider cpu"):
        open_generator(onnx_file, "cuda", say=lambda _: None)


def test_onnx_file_without_our_metadata_is_refused(onnx_file, tmp_path):
    model = onnx.load(str(onnx_file))
    del model.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    result = _invoke("sample", str(plain), "-n", "4", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert "not a ganbench zoo generator" in result.output and "zoo export" in result.output
    assert not (tmp_path / "x.png").exists()


def test_broken_metadata_and_truncated_files_are_refused(onnx_file, tmp_path):
    model = onnx.load(str(onnx_file))
    for prop in model.metadata_props:
        if prop.key == "z_dim":
            prop.value = "many"
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ZooError, match="broken ganbench metadata"):
        open_generator(broken, "cpu")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_file.read_bytes()[:50_000])
    result = _invoke("sample", str(truncated), "-n", "4", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1 and "not a readable ONNX file" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "0 is not in the range x>=1"),
        (["-n", "-3"], "-3 is not in the range x>=1"),
        (["-o", "/nonexistent-folder/g.png"], "does not exist"),
        (["-o", "grid.txt"], "give a .png or .jpg file"),
    ],
)
def test_sample_rejects_bad_arguments(onnx_file, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    base = {"-n": "4", "-o": "g.png"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = _invoke("sample", str(onnx_file), *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2 and message in result.output
    assert not list(tmp_path.iterdir())


def test_output_the_system_refuses_is_a_clear_error(onnx_file):
    """/proc takes no new files, not even from root: the write fails cleanly."""
    result = _invoke("sample", str(onnx_file), "-n", "1", "-o", "/proc/ganbench-grid.png")
    assert result.exit_code == 2 and "cannot write /proc/ganbench-grid.png" in result.output


def test_unwritable_output_path_is_refused_before_work(onnx_file, tmp_path):
    """A directory in the way of the output file: refused, and nothing is written."""
    (tmp_path / "g.png").mkdir()
    result = _invoke("sample", str(onnx_file), "-n", "4", "-o", str(tmp_path / "g.png"))
    assert result.exit_code == 2 and "is a directory" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]


def test_arithmetic_expressions():
    assert parse_arithmetic("1,5,9 - 2,4,6 + 7,8,11") == [
        (1, [1, 5, 9]),
        (-1, [2, 4, 6]),
        (1, [7, 8, 11]),
    ]
    assert parse_arithmetic("3-4") == [(1, [3]), (-1, [4])]
    for bad in ("", "1,2,3", "1,2 + + 3", "a,b - 1", "1 -", "1 2"):
        with pytest.raises(UsageError, match="groups of sample indices"):
            parse_arithmetic(bad)


def _cell(pixels: np.ndarray, row: int, col: int, size: int = 32) -> np.ndarray:
    """Cell (row, col) of a grid with 2-pixel borders."""
    y, x = 2 + row * (size + 2), 2 + col * (size + 2)
    return pixels[y : y + size, x : x + size].astype(int)


def test_arithmetic_picture_is_the_mean_difference(tmp_path):
    """`zoo arithmetic` of the shipped generator (trained: its images depend on z) against
    a computation that shares no ganbench code: NumPy's seeded latents (index i of `sample
    --seed S`), group means and their signed sum, the variations' uniform jitter (seeded
    [S, 2]), the ONNX model run by onnxruntime itself, and the grid with 2-pixel black
    borders laid out here: every pixel within 1 (rounding; measured: all equal)."""
    seed, noise, variations = 11, 0.5, 5
    groups = [(1, [4, 1]), (-1, [7]), (1, [0, 2, 9])]
    onnx_file = Path(bundled_index()).with_name("dcgan-digits-32.onnx")
    out = tmp_path / "sum.png"
    args = ["arithmetic", str(onnx_file), "4,1 - 7 + 0,2,9", "-o", str(out), "--seed", str(seed)]
    result = _invoke(*args, "--noise", str(noise), "--variations", str(variations))
    assert result.exit_code == 0, result.output

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["z_distribution"] == "uniform"
    z_dim = int(meta["z_dim"])
    z = np.random.default_rng(seed).uniform(-1, 1, (10, z_dim))  # float64 here
    means = [z[ix].mean(axis=0) for _, ix in groups]
    total = sum(sign * m for (sign, _), m in zip(groups, means, strict=True))
    jitter = np.random.default_rng([seed, 2]).uniform(-noise, noise, (variations, z_dim))
    rows = [[*z[ix], m] for (_, ix), m in zip(groups, means, strict=True)]
    rows.append([total, *(total + jitter)])

    def draw(latent_rows):
        flat = np.array([v for row in latent_rows for v in row], np.float32)
        images = session.run(["images"], {"z": flat})[0][:, 0]  # N x 32 x 32 in [-1, 1]
        return np.clip(np.round((images + 1) * 127.5), 0, 255)

    images = draw(rows)
    expected = np.zeros((2 + 4 * 34, 2 + (1 + variations) * 34))  # black borders, blanks
    k = 0
    for r, row in enumerate(rows):
        for c in range(len(row)):
            y, x = 2 + r * 34, 2 + c * 34
            expected[y : y + 32, x : x + 32] = images[k]
            k += 1
    with Image.open(out) as picture:
        assert picture.mode == "L"
        pixels = np.asarray(picture).astype(int)
    assert pixels.shape == expected.shape
    assert np.abs(pixels - expected).max() <= 1

    # It can fail: the result with every sign + (mean 66 levels apart per pixel, measured)
    # and the unjittered result (8-17 levels from each variation) are other pictures.
    all_plus = draw([[sum(means)]])[0]
    assert np.abs(_cell(pixels, 3, 0) - all_plus).mean() > 20
    for c in range(1, 1 + variations):
        assert np.abs(_cell(pixels, 3, c) - _cell(pixels, 3, 0)).mean() > 4, c


def test_walk_goes_in_a_straight_line():
    a, b = np.zeros(3, np.float32), np.ones(3, np.float32)
    np.testing.assert_allclose(walk(a, b, 5)[:, 0], [0, 0.25, 0.5, 0.75, 1])


def test_interpolate_between_sample_indices(onnx_file, tmp_path):
    out = tmp_path / "w.png"
    result = _invoke(
        "interpolate", str(onnx_file), "--between", "0,3", "--steps", "4", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as picture:
        assert picture.size == (2 + 4 * 34, 2 + 34)
    bad = _invoke("interpolate", str(onnx_file), "--between", "0", "-o", str(out))
    assert bad.exit_code == 2 and "two sample indices" in bad.output


def test_grid_layout():
    images = np.arange(5 * 3 * 2 * 2, dtype=np.uint8).reshape(5, 3, 2, 2)
    picture = np.asarray(grid(square_rows(images, 2), padding=1))
    assert picture.shape == (1 + 3 * 3, 1 + 2 * 3, 3)
    np.testing.assert_array_equal(picture[4:6, 4:6], images[3].transpose(1, 2, 0))
    assert picture[7:9, 4:6].max() == 0  # the missing sixth image is left black


def test_random_walks_start_and_end_at_sample_indices(onnx_file, tmp_path):
    """Row r of `interpolate --seed S` walks from sample 2r to 2r+1 of `sample --seed S`:
    a 2-step walk is exactly those two samples."""
    walk_png, sample_png = tmp_path / "w.png", tmp_path / "s.png"
    f = str(onnx_file)
    assert (
        _invoke(
            "interpolate", f, "--rows", "1", "--steps", "2", "--seed", "4", "-o", str(walk_png)
        ).exit_code
        == 0
    )
    assert (
        _invoke(
            "sample", f, "-n", "2", "--nrow", "2", "--seed", "4", "-o", str(sample_png)
        ).exit_code
        == 0
    )
    with Image.open(walk_png) as w, Image.open(sample_png) as s:
        np.testing.assert_array_equal(np.asarray(w), np.asarray(s))
