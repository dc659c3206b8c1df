"""BLINDSPOTS_NB_OFFLINE=1: no code path connects (LPIPS's trunk weights here; the CIFAR-10 batch and a received
run's image source in test_runs_browser.py); each missing file is one message saying what to put where."""

import socket

import torch


def test_lpips_offline_never_connects_and_says_what_to_put_where(tmp_path, monkeypatch):
    from blindspots_nb.analysis.metrics import LPIPSDistance

    tried = []

    def refuse(*args, **kwargs):
        tried.append(args)
        raise OSError("no network in this test")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    lpips = LPIPSDistance()
    assert not lpips.available and tried == [] and not (tmp_path / "hub").exists()
    assert lpips.missing_reason == (
        f"no AlexNet trunk weights at {tmp_path / 'hub' / 'checkpoints' / 'alexnet-owt-7be5be79.pth'} "
        "(BLINDSPOTS_NB_OFFLINE=1: not downloaded); put torchvision's alexnet-owt-7be5be79.pth "
        "(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) there or pass trunk_weights=PATH")
