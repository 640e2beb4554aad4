import json
import logging
import random

import torch

from ablate.train.checkpoint import (
    CHECKPOINT_FILE,
    MANIFEST_FILE,
    TrainPosition,
    load_checkpoint,
    save_checkpoint,
)


def _save(tmp_path, position=None):
    position = position or TrainPosition(2, 5, 17)
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(
        tmp_path,
        trainable=dict(layer.state_dict()),
        optimizer=optimizer.state_dict(),
        position=position,
        extra={"history": {"epoch_loss": [1.5, 1.25]}},
    )
    return layer, optimizer


def test_round_trip_restores_weights_optimizer_position_and_rng(tmp_path):
    layer, optimizer = _save(tmp_path)
    expected_torch = torch.rand(3)
    expected_py = random.random()
    payload = load_checkpoint(tmp_path)
    assert payload is not None
    assert payload["position"] == TrainPosition(2, 5, 17)
    for key, value in layer.state_dict().items():
        assert torch.equal(payload["trainable"][key], value)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(payload["optimizer"])
    assert fresh.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert payload["extra"]["history"]["epoch_loss"] == [1.5, 1.25]
    from ablate.train.checkpoint import restore_rng_state

    restore_rng_state(payload["rng"])
    assert torch.equal(torch.rand(3), expected_torch)
    assert random.random() == expected_py
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["step"] == 17
    assert not list(tmp_path.glob(".*.tmp"))


def test_no_checkpoint_returns_none(tmp_path):
    assert load_checkpoint(tmp_path) is None


def test_corrupt_checkpoint_is_ignored_with_warning(tmp_path, caplog):
    _save(tmp_path)
    data = bytearray((tmp_path / CHECKPOINT_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / CHECKPOINT_FILE).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(tmp_path) is None
    assert "SHA-256" in caplog.text


def test_missing_manifest_is_ignored_with_warning(tmp_path, caplog):
    _save(tmp_path)
    (tmp_path / MANIFEST_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(tmp_path) is None
    assert "ignoring checkpoint" in caplog.text


def test_overwrite_keeps_latest(tmp_path):
    _save(tmp_path, TrainPosition(1, 0, 4))
    _save(tmp_path, TrainPosition(2, 0, 8))
    payload = load_checkpoint(tmp_path)
    assert payload["position"] == TrainPosition(2, 0, 8)
