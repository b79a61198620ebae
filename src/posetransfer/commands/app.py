"""`posetransfer app`: the local web demo (Gradio)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from posetransfer.commands import checkpoint_or_bundled, report_inference
from posetransfer.commands.options import (
    Checkpoint,
    Device,
    Inference,
    add_options,
    options_from_args,
)
from posetransfer.core.options import option

DESCRIPTION = """\
Serve a local web page for pose transfer: upload a photo, see the detected skeleton, pick a named
target pose or upload a target photo or OpenPose .json, adjust joints (table or click), press
Generate, see the result next to the input. Needs the [app] and [keypoints] extras. The page
works offline (no analytics, no version check, no public share link). Without --checkpoint
it serves the bundled synthetic-patn, trained on synthetic people only (the page says so)."""

EPILOG = """\
examples:
  posetransfer app
  posetransfer app --checkpoint runs/00000-patn_small-synthetic
  # then open http://127.0.0.1:7860 in a browser; Ctrl-C stops the server
  posetransfer app --checkpoint latest_net_netG.pth --host 0.0.0.0 --port 8080
"""


@dataclass(frozen=True)
class ServeOptions:
    """`posetransfer app`: where the page is served."""

    host: str = option("127.0.0.1", help="interface to listen on (0.0.0.0 for the local network)")
    port: int = option(7860, help="TCP port")


OPTIONS = (Checkpoint, Inference, ServeOptions, Device)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "app",
        help="serve the interactive web demo locally",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from posetransfer.errors import InputError

    ckpt, inference, serve, device = options_from_args(args, *OPTIONS)
    if not 0 < serve.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {serve.port}")
    from posetransfer.core.device import resolve_device

    dev = resolve_device(device.device)  # a wrong --device stops before gradio loads
    t0 = time.perf_counter()
    try:
        from posetransfer.app import build_app, check_address, launch
    except ModuleNotFoundError as e:
        if e.name == "gradio":
            raise InputError("the web demo needs gradio: pip install 'posetransfer[app]'")
        raise
    from posetransfer.core.scratch import Terminated, terminate_as_interrupt
    from posetransfer.photos.transfer import PoseTransfer

    # A host that does not resolve or a port in use stops here, before the model loads.
    check_address(serve.host, serve.port)
    # SIGTERM stops the server as Ctrl-C does, so that the page's downloads folder is removed.
    with terminate_as_interrupt() as stop:
        # Load the checkpoint first: a wrong path stops with one line, before any server starts.
        pt = PoseTransfer.from_checkpoint(
            checkpoint_or_bundled(ckpt), device=dev, **inference.kwargs()
        )
        report_inference(pt.model)
        demo = build_app(pt)
        launch(demo, host=serve.host, port=serve.port, block=False, quiet=True)
        url = f"http://{serve.host}:{serve.port}"
        print(f"serving on {url} (ready in {time.perf_counter() - t0:.1f} s)")
        print("Ctrl-C stops the server", flush=True)
        try:
            demo.block_thread()  # returns on Ctrl-C or SIGTERM, having closed the server
        finally:
            pt.close()
    return Terminated.exit_code if stop.terminated else 0
