"""``ganbench datasets`` and ``ganbench data ...`` through the CLI."""

from __future__ import annotations

from ganbench.plugins import load_registries


def test_datasets_lists_every_registered_dataset(ganbench_run_cli):
    result = ganbench_run_cli("datasets")
    assert result.exit_code == 0, result.output
    names = load_registries().datasets.names()
    assert len(names) >= 9
    rows = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert set(names) <= rows
    digits_row = next(line for line in result.output.splitlines() if line.startswith(" digits"))
    assert "32*" in digits_row and "bundled" in digits_row and " 10 " in digits_row


def test_data_info_shows_files_and_counts(ganbench_run_cli, tmp_path):
    result = ganbench_run_cli("data", "info", "digits", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "license: CC BY 4.0" in out and "cite: Alpaydin" in out
    assert "train: 1437 images in 1 file(s)" in out and "test: 360 images" in out


def test_bundled_dataset_needs_no_download(ganbench_run_cli):
    result = ganbench_run_cli("data", "download", "digits")
    assert result.exit_code == 0 and "nothing to download" in result.output


def test_by_hand_dataset_says_where_to_get_and_put_it(ganbench_run_cli, tmp_path):
    result = ganbench_run_cli("data", "download", "lsun", "--cache-dir", str(tmp_path))
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: lsun cannot be downloaded by ganbench:")
    assert "--data-root" in line and str(tmp_path / "datasets" / "lsun") in line


def test_prepare_rejects_a_resolution_the_dataset_lacks(ganbench_run_cli):
    result = ganbench_run_cli("data", "prepare", "digits", "--resolution", "48")
    assert result.exit_code == 2
    assert "digits is not offered at resolution 48" in result.output


def test_unknown_dataset_in_data_commands(ganbench_run_cli):
    result = ganbench_run_cli("data", "info", "cifar100")
    assert result.exit_code == 2 and "unknown dataset 'cifar100'" in result.output
