"""Class-conditional training end to end, through the core's step and runner, with real
runs in a real MLflow store: a conditional generator draws the class it is asked for; a
run with EMA and DiffAugment killed with SIGKILL resumes bit for bit (the moving average,
the labels' data order and the augmentation's draws included); augmentation is off
wherever images are generated for use (grids, scores, export)."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image
from processes import finish, ganbench, logged_steps, wait_for

from ganbench.images import to_uint8
from ganbench.metrics.features import generator_sampler
from ganbench.plugins.interfaces import ImageShape
from ganbench.rundir import checkpoint
from ganbench.testing import state_tensors
from ganbench.training.augment import diff_augment
from ganbench_plugins.digits.classifier import load_extractor
from ganbench_plugins.resnet.config import ResNetConfig
from ganbench_plugins.resnet.model import ResNetGAN

#: Narrow ResNets on 32 px digits (the digits preset's widths) with Adam at 1e-3.
TINY = ("--set", "g_width=0.125", "--set", "d_width=0.25", "--set", "lr=0.001")
#: Chance is 1/10. Measured (2 CPU cores, seed 0, 2026-12-06): ACGAN 0.607 after 300
#: steps (0.117 at 100, 0.296 at 200); projection 0.336 after 300.
ACGAN_ACCURACY_FLOOR = 0.3


def _only_run(uri: str):
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return client, run


def test_an_acgan_on_digits_draws_the_class_it_is_asked_for(ganbench_run_cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    result = ganbench_run_cli(
        *("run", "resnet", "--dataset", "digits", "--steps", "300", "--no-progress"),
        *TINY,
        *("--set", "conditional=acgan", "--set", "eval_every=300"),
        *("--set", "eval_metrics=class_accuracy", "--set", "eval_samples=1000"),
        *("--tracking-uri", uri, "--run-dir", str(tmp_path / "run")),
    )
    assert result.exit_code == 0, result.output
    client, run = _only_run(uri)
    logged = run.data.metrics["digits-cnn/class_accuracy_1k"]
    assert logged > ACGAN_ACCURACY_FLOOR, logged

    # The same question asked without the scorer: generator.pt rebuilt by hand, 50 images
    # of each class, labelled by the bundled digits classifier.
    saved = checkpoint.load_file(tmp_path / "run" / "generator.pt", checkpoint.GENERATOR_FORMAT)
    assert saved["num_classes"] == 10 and saved["generator"] == "live"
    model = ResNetGAN(ResNetConfig(**saved["config"]), ImageShape(1, 32, 10))
    model.generator.load_state_dict(saved["state_dict"])
    model.generator.eval()
    y = torch.arange(10).repeat_interleave(50)
    z = model.sample_latent(500, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        images = torch.from_numpy(to_uint8(model.generate(z, y).numpy()))
        classifier = load_extractor(None, torch.device("cpu")).module
        predicted = classifier(images)["logits"].argmax(1)
    accuracy = (predicted == y).float().mean().item()
    assert accuracy > ACGAN_ACCURACY_FLOOR, accuracy
    per_class = [(predicted[y == k] == k).float().mean().item() for k in range(10)]
    assert sum(a > 0.1 for a in per_class) >= 5, per_class  # not one class drawn well

    # The sample grid: one row per class (10 rows of 32 px + 2 px padding).
    grid = Image.open(tmp_path / "run" / "samples_final.png")
    assert grid.height == 10 * 34 + 2, grid.size
    assert client.get_run(run.info.run_id).data.tags["ganbench.generator"] == "live"


#: A conditional run with everything that must resume exactly: labels in the data order,
#: the moving average, DiffAugment's random draws, n_critic 2 (two labelled batches a step).
RESUMED_STEPS = 120
CONDITIONAL_RUN = (
    *("run", "resnet", "--dataset", "digits", "--steps", str(RESUMED_STEPS), "--no-progress"),
    *("--batch-size", "16", *TINY, "--set", "conditional=projection", "--set", "n_critic=2"),
    *("--set", "ema=0.9", "--set", "ema_start=5", "--set", "diffaugment=color,translation,cutout"),
    *("--set", "log_every=5", "--set", "checkpoint_every=10", "--set", "sample_every=50"),
    *("--set", "lr_decay=linear"),
)


def _conditional_run(folder: Path, name: str):
    folder.mkdir(exist_ok=True)
    uri = f"sqlite:///{folder / (name + '.db')}"
    run_dir = folder / name
    proc = ganbench(
        *CONDITIONAL_RUN,
        *("--tracking-uri", uri, "--run-dir", str(run_dir)),
        cwd=folder,
        name=name,
    )
    return proc, uri, run_dir


def test_a_conditional_run_with_ema_and_diffaugment_resumes_bit_for_bit(tmp_path):
    ref_proc, ref_uri, ref_dir = _conditional_run(tmp_path / "ref", "ref")
    assert finish(ref_proc) == 0, (tmp_path / "ref" / "ref.err").read_text()
    proc, uri, run_dir = _conditional_run(tmp_path / "killed", "killed")
    wait_for("step 40", lambda: max(logged_steps(run_dir), default=0) >= 40, 240, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL, "the run ended before the kill"
    _, run = _only_run(uri)
    resumed = ganbench(
        *("resume", run.info.run_id, "--tracking-uri", uri, "--no-progress"),
        cwd=tmp_path / "killed",
        name="resume",
    )
    assert finish(resumed) == 0, (tmp_path / "killed" / "resume.err").read_text()

    final = f"checkpoints/step-{RESUMED_STEPS:09d}.pt"
    a = checkpoint.load_file(ref_dir / final, checkpoint.CHECKPOINT_FORMAT)
    b = checkpoint.load_file(run_dir / final, checkpoint.CHECKPOINT_FORMAT)
    assert a["ema"]["step"] == b["ema"]["step"] == RESUMED_STEPS
    # the last step's rates: lr x (1 - (120 - 1) / 120), for G and D alike
    for opt in ("opt_g", "opt_d"):
        [group] = b["state"][opt]["param_groups"]
        assert group["lr"] == pytest.approx(1e-3 * (1 - (RESUMED_STEPS - 1) / RESUMED_STEPS))
    for part in ("state", "ema"):
        ta, tb = dict(state_tensors(a[part])), dict(state_tensors(b[part]))
        assert ta.keys() == tb.keys() and len(ta) > 20
        unequal = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert unequal == [], f"{part}: tensors differ after the resume: {unequal[:5]}"
    # the average is not G itself (it averaged), and generator.pt holds the average
    g = dict(state_tensors(b["state"]["generator"]))
    avg = dict(state_tensors(b["ema"]["module"]))
    assert any(not torch.equal(g[k], avg[k]) for k in g)
    saved = checkpoint.load_file(run_dir / "generator.pt", checkpoint.GENERATOR_FORMAT)
    assert saved["generator"] == "ema"
    module = b["ema"]["module"]
    assert saved["state_dict"].keys() == module.keys()
    assert all(torch.equal(v, module[k]) for k, v in saved["state_dict"].items())
    client, run = _only_run(uri)
    ref_client, ref_run = _only_run(ref_uri)
    for key in ("loss_d", "loss_g", "d_real"):
        ha = [(m.step, m.value) for m in ref_client.get_metric_history(ref_run.info.run_id, key)]
        hb = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(ha) == sorted(hb), key
    assert run.data.tags["ganbench.generator"] == "ema"


def test_augmentation_trains_through_d_and_is_off_wherever_images_are_used():
    torch.manual_seed(0)
    config = ResNetConfig(g_width=0.125, d_width=0.25, conditional="projection", n_critic=1)
    model = ResNetGAN(config, ImageShape(1, 32, 10))
    real = torch.rand(8, 1, 32, 32) * 2 - 1
    labels = torch.arange(8) % 10

    sample = generator_sampler(model, torch.device("cpu"), seed=3)
    before, before_y = sample(6)
    model.augment = diff_augment("color,translation,cutout")
    seen: list[torch.Tensor] = []
    augment = model.augment
    model.augment = lambda x: seen.append(augment(x)) or seen[-1]
    after, after_y = generator_sampler(model, torch.device("cpu"), seed=3)(6)
    assert seen == []  # sampling for scores never augments
    assert torch.equal(before, after) and torch.equal(before_y, after_y)

    # In the step D sees augmented reals and fakes (D update: 2; G update: 1), and G's
    # gradients come through the augmentation.
    grads = []
    model.generator.blocks[0].register_full_backward_hook(
        lambda m, gi, go: grads.append(go[0].abs().sum().item())
    )
    model.train_step(real, labels)
    assert len(seen) == 3 and all(x.shape == (8, 1, 32, 32) for x in seen)
    assert grads and grads[-1] > 0
    assert not np.allclose(seen[0].detach().numpy(), real.numpy())  # reals augmented


@pytest.mark.parametrize("missing", ["labels", "classes"])
def test_conditional_training_needs_labels_it_can_use(ganbench_run_cli, tmp_path, missing):
    if missing == "labels":
        config = ResNetConfig(g_width=0.125, d_width=0.25, conditional="projection", n_critic=1)
        model = ResNetGAN(config, ImageShape(1, 32, 10))
        with pytest.raises(ValueError, match="labelled images"):
            model.train_step(torch.zeros(4, 1, 32, 32))
        return
    result = ganbench_run_cli(
        *("run", "resnet", "--dataset", "imagefolder", "--set", "conditional=acgan"),
        *("--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"),
    )
    assert result.exit_code != 0
    assert "class labels" in result.output or "labels" in result.output, result.output


def test_eval_scores_the_moving_average_or_g_and_says_which(ganbench_run_cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    result = ganbench_run_cli(
        *("run", "resnet", "--dataset", "digits", "--steps", "20", "--no-progress"),
        *TINY,
        *("--set", "conditional=projection", "--set", "ema=0.9"),
        *("--tracking-uri", uri, "--run-dir", str(tmp_path / "run")),
    )
    assert result.exit_code == 0, result.output
    client, run = _only_run(uri)
    cache = tmp_path / "cache"
    common = ("--tracking-uri", uri, "--cache-dir", str(cache))
    common += ("--metrics", "fid,class_accuracy", "-n", "200")
    for which in ("auto", "live"):
        scored = ganbench_run_cli("eval", run.info.run_id, *common, "--generator", which)
        assert scored.exit_code == 0, scored.output
    metrics = client.get_run(run.info.run_id).data.metrics
    ema, live = metrics["eval/digits-cnn/fid_200"], metrics["eval/live/digits-cnn/fid_200"]
    assert ema != live and "eval/live/digits-cnn/class_accuracy_200" in metrics
    texts = [p.read_text() for p in cache.glob("outbox/*/scoring/eval-*.json")]
    assert len(texts) == 2 and sum("moving average" in t for t in texts) == 1, texts

    # analyze draws the averaged G too, of the class asked for; a class it lacks is refused
    out = tmp_path / "samples"
    drawn = ganbench_run_cli(
        *("analyze", run.info.run_id, "samples", "-n", "12", "--class", "3"),
        *("--tracking-uri", uri, "--out", str(out), "--no-progress"),
    )
    assert drawn.exit_code == 0, drawn.output
    assert "moving average" in drawn.output and list(out.glob("*.png"))
    wrong = ganbench_run_cli(
        *("analyze", run.info.run_id, "samples", "--class", "10"),
        *("--tracking-uri", uri, "--out", str(out)),
    )
    assert wrong.exit_code != 0 and "classes 0 to 9" in wrong.output, wrong.output

    plain = ganbench_run_cli(
        *("run", "dcgan", "--dataset", "digits", "--steps", "2", "--no-progress"),
        *("--set", "ngf=8", "--set", "ndf=8", "--resolution", "16", "--batch-size", "16"),
        *("--tracking-uri", uri),
    )
    assert plain.exit_code == 0, plain.output
    runs = client.search_runs([run.info.experiment_id], order_by=["start_time DESC"])
    refused = ganbench_run_cli(
        "eval", runs[0].info.run_id, *common[:4], "-n", "100", "--generator", "ema"
    )
    assert refused.exit_code != 0
    assert "kept no moving average of G" in refused.output
    unconditional = ganbench_run_cli(
        *("analyze", runs[0].info.run_id, "samples", "--class", "1"),
        *("--tracking-uri", uri, "--out", str(out)),
    )
    assert unconditional.exit_code != 0
    assert "unconditional generator" in unconditional.output, unconditional.output
