"""The web demo: upload a photo, pick or make a target pose, press Generate.

``posetransfer app [--checkpoint CKPT]`` (default: the bundled ``synthetic-patn``) serves a
local Gradio page (the ``[app]`` extra):

1. **Source photo**: upload any photo of one person; the page shows the person as the model
   sees them (framed to the model's size) with the detected skeleton drawn over.
2. **Target pose**: pick a named pose, or upload a target photo or an OpenPose ``.json``; the
   skeleton is shown over the framed source. Adjust it by editing the joint table (frame pixels;
   -1 removes a joint), or pick a joint and click where it should go on the skeleton image.
3. **Generate**: the result appears next to the input, at the model's size or pasted back into
   the photo.

Everything the page does is in plain functions (`load_source`, `joints_table`,
`keypoints_from_table`, `move_joint`, `run_generate`, ...) that raise `InputError`; the Gradio
callbacks in `build_app` only turn those errors into warnings on the page. The page needs no
internet: analytics and Gradio's version check are off, server-side rendering is off and the
theme's fonts ship inside the gradio package.
"""

from __future__ import annotations

import atexit
import errno
import html
import math
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from posetransfer.checkpoint.bundled import SYNTHETIC_ONLY
from posetransfer.core.files import save_image
from posetransfer.core.scratch import new_scratch_dir
from posetransfer.errors import InputError
from posetransfer.keypoints.framing import check_keypoints
from posetransfer.keypoints.named_poses import POSE_DESCRIPTIONS, POSE_NAMES
from posetransfer.keypoints.targets import read_photo
from posetransfer.photos.transfer import PoseTransfer, Source
from posetransfer.pose import (
    JOINT_NAMES,
    MISSING,
    N_JOINTS,
    KeypointWarning,
    draw_skeleton,
    require_joints,
    visible,
)

# Before gradio is imported: no telemetry, no version check, no Hugging Face calls.
for _key, _value in (
    ("GRADIO_ANALYTICS_ENABLED", "False"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("HF_HUB_OFFLINE", "1"),
):
    os.environ.setdefault(_key, _value)

import gradio as gr  # noqa: E402

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_POSE = "walking"
DOWNLOADS_PREFIX = "posetransfer-app-"
"""The page's downloads folder in the temporary directory: ``posetransfer-app-<pid>-*``, removed
when the app stops (Ctrl-C, SIGTERM, a normal exit); those of killed apps are swept at the next
start."""
DISPLAY_HEIGHT = 384  # previews are drawn at least this high (nearest-neighbour enlargement)
TABLE_HEADERS = ["joint", "y", "x"]

INTRO = """\
# posetransfer: pose-guided person image generation
Upload a photo of one person (whole body in view: both shoulders and hips are needed), pick a
target pose or upload one, then press **Generate**.
"""


# --------------------------------------------------------------------------------------------
# Plain functions (no Gradio): what the page does


def display_factor(height: int) -> int:
    """Integer enlargement that makes a ``height``-pixel frame at least `DISPLAY_HEIGHT` high."""
    return max(1, math.ceil(DISPLAY_HEIGHT / height))


def skeleton_overlay(
    kps: np.ndarray, image: np.ndarray | None, height: int, width: int, dim: float = 0.0
) -> np.ndarray:
    """The skeleton drawn over a frame-sized image (or black), enlarged for display.

    Args:
        kps: (18, 2) frame keypoints.
        image: uint8 (height, width, 3) background, or None for black.
        height: frame height.
        width: frame width.
        dim: darken the background by this fraction (0..1) so the skeleton stands out.
    """
    f = display_factor(height)
    if image is None:
        background = np.zeros((height * f, width * f, 3), np.uint8)
    else:
        big = Image.fromarray(np.asarray(image)).resize((width * f, height * f), Image.NEAREST)
        background = (np.asarray(big, dtype=np.float32) * (1.0 - dim)).astype(np.uint8)
    kps = np.asarray(kps)
    scaled = np.where(visible(kps)[:, None], kps * f + f // 2, MISSING)
    return draw_skeleton(scaled, height * f, width * f, background=background)


def enlarge(image: np.ndarray) -> np.ndarray:
    """An image enlarged by `display_factor` of its height (nearest neighbour: crisp pixels)."""
    f = display_factor(image.shape[0])
    if f == 1:
        return image
    return np.asarray(
        Image.fromarray(image).resize((image.shape[1] * f, image.shape[0] * f), Image.NEAREST)
    )


def click_to_frame(index: Sequence[int], height: int, width: int) -> tuple[int, int]:
    """A click on a preview (Gradio gives (x, y) in the displayed image) -> frame (y, x)."""
    if index is None or len(index) != 2:
        raise InputError("click on the target skeleton image to move a joint")
    f = display_factor(height)
    x, y = (int(v) for v in index)
    return min(max(y // f, 0), height - 1), min(max(x // f, 0), width - 1)


def load_source(pt: PoseTransfer, image: np.ndarray | None) -> tuple[Source, np.ndarray]:
    """Detect and frame the person of an uploaded photo.

    Returns:
        (the framed `Source`, its skeleton overlay for display).

    Raises:
        InputError: no image, no person found, torso joints missing.
    """
    if image is None:
        raise InputError("upload a source photo first")
    source = pt.prepare_source(image, what="source photo")
    return source, skeleton_overlay(source.kps, source.image, pt.height, pt.width)


def pose_from_name(pt: PoseTransfer, name: str) -> np.ndarray:
    """Frame keypoints of a named pose; InputError listing the names for an unknown one."""
    if name not in POSE_NAMES:
        raise InputError(f"unknown pose {name!r}; choose from {', '.join(POSE_NAMES)}")
    return pt.target_keypoints(name)


def pose_from_file(pt: PoseTransfer, path: str | Path | None) -> np.ndarray:
    """Frame keypoints from an uploaded target photo or OpenPose ``.json`` file."""
    if path is None:
        raise InputError("upload a target photo or an OpenPose .json file")
    path = Path(path)
    if path.suffix.lower() == ".json":
        return pt.target_keypoints(path)
    try:
        photo = read_photo(path)
    except InputError:
        raise InputError(f"{path.name}: not an image nor an OpenPose .json file")
    return pt.target_from_photo(photo, path.name)


def target_preview(pt: PoseTransfer, kps: np.ndarray, source: Source | None) -> np.ndarray:
    """The target skeleton over the dimmed framed source (black without one)."""
    image = source.image if source is not None else None
    return skeleton_overlay(kps, image, pt.height, pt.width, dim=0.55)


def joints_table(kps: np.ndarray) -> list[list[Any]]:
    """Rows ``[joint name, y, x]`` for the joint table; -1 for a missing joint."""
    kps = np.asarray(kps)
    return [[JOINT_NAMES[j], int(kps[j, 0]), int(kps[j, 1])] for j in range(N_JOINTS)]


def keypoints_from_table(rows: Any, height: int, width: int) -> np.ndarray:
    """Keypoints from an edited joint table (rows ``[joint, y, x]`` in joint order).

    Empty or negative cells mark the joint missing (the page says -1). A joint placed past the
    frame is treated as missing too, with a `KeypointWarning` naming it (`check_keypoints`).

    Raises:
        InputError: for a table of the wrong size or a cell that is not a number.
    """
    if hasattr(rows, "values"):  # a pandas DataFrame
        rows = rows.values.tolist()
    rows = list(rows)
    if len(rows) != N_JOINTS:
        raise InputError(f"the joint table must have 18 rows, got {len(rows)}")
    kps = np.full((N_JOINTS, 2), MISSING, dtype=np.int64)
    for j, row in enumerate(rows):
        if len(row) < 3:
            raise InputError(f"joint table, row {j + 1}: expected joint, y, x")
        values = []
        for cell in row[1:3]:
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                values.append(MISSING)
                continue
            try:
                v = float(cell)
            except (TypeError, ValueError):
                raise InputError(
                    f"joint table, row {j + 1} ({JOINT_NAMES[j]}): {cell!r} is not a number"
                )
            # NaN (an emptied numeric cell), infinities, negative and absurd values: no joint.
            r = round(v) if math.isfinite(v) else MISSING
            values.append(r if 0 <= r < 2**62 else MISSING)
        kps[j] = values
    return check_keypoints(kps, "joint table", (height, width))


def move_joint(kps: np.ndarray, joint: str, y: int, x: int) -> np.ndarray:
    """A copy of ``kps`` with ``joint`` (a name of `JOINT_NAMES`) moved to (y, x)."""
    if joint not in JOINT_NAMES:
        raise InputError(f"unknown joint {joint!r}; choose from {', '.join(JOINT_NAMES)}")
    out = check_keypoints(kps).copy()
    out[JOINT_NAMES.index(joint)] = y, x
    return out


def run_generate(
    pt: PoseTransfer, source: Source | None, tgt_kps: np.ndarray | None, paste_back: bool
) -> np.ndarray:
    """Generate the framed source person in the target pose.

    Returns:
        uint8 image: the generated frame, or the source photo with it pasted back.

    Joints outside the frame are treated as missing (with a `KeypointWarning`).

    Raises:
        InputError: no source photo or no target pose yet, or a target with too few joints.
    """
    if source is None:
        raise InputError("upload a source photo with a person first")
    if tgt_kps is None:
        raise InputError("pick or upload a target pose first")
    tgt_kps = check_keypoints(tgt_kps, "target pose", (pt.height, pt.width))
    require_joints(tgt_kps, "the target pose (joints inside the frame)")
    fake = pt.generate(source.image, source.kps, tgt_kps)
    if paste_back:
        return source.paste_back(fake)
    return fake


def model_summary(pt: PoseTransfer) -> str:
    """One Markdown line describing the loaded generator."""
    info = pt.info
    step = f", step {info.step}" if info.step is not None else ""
    where = f"the bundled model `{info.pretrained}`" if info.pretrained else f"`{info.source}`"
    line = (
        f"**Model:** `{info.name}` ({info.height}x{info.width}{step}) from {where} on {pt.device}."
    )
    if info.pretrained:
        line += f" It was {SYNTHETIC_ONLY}."
    return line


# --------------------------------------------------------------------------------------------
# The page


def build_app(pose_transfer_or_checkpoint: PoseTransfer | str | Path) -> gr.Blocks:
    """Build the Gradio page around a `PoseTransfer` or a checkpoint path.

    Args:
        pose_transfer_or_checkpoint: a ready `PoseTransfer`, or anything
            `PoseTransfer.from_checkpoint` accepts (loaded on the CPU).

    Returns:
        The unlaunched ``gr.Blocks``; call `launch` (or ``.launch()``) to serve it.

    Raises:
        InputError: the checkpoint is missing or unreadable.
    """
    pt = pose_transfer_or_checkpoint
    if not isinstance(pt, PoseTransfer):
        pt = PoseTransfer.from_checkpoint(pt)
    h, w = pt.height, pt.width
    initial_kps = pt.target_keypoints(DEFAULT_POSE)
    # Results at their true size for download; Gradio copies them into its own cache.
    downloads = str(new_scratch_dir(tempfile.gettempdir(), DOWNLOADS_PREFIX))
    atexit.register(shutil.rmtree, downloads, ignore_errors=True)
    pose_choices = [(f"{n}: {POSE_DESCRIPTIONS[n]}", n) for n in POSE_NAMES]

    def warn(e: InputError) -> str:
        message = html.escape(str(e))  # messages quote file names; show them as text
        gr.Warning(message)
        return f"**Problem:** {message}"

    def on_source(image, tgt_kps):
        try:
            source, overlay = load_source(pt, image)
        except InputError as e:
            if image is None:  # the photo was cleared
                return None, None, "Upload a source photo.", target_preview(pt, tgt_kps, None)
            return None, None, warn(e), target_preview(pt, tgt_kps, None)
        status = "Person found. Pick a target pose and press **Generate**."
        return source, overlay, status, target_preview(pt, tgt_kps, source)

    def set_target(kps, source, status):
        return kps, joints_table(kps), target_preview(pt, kps, source), status

    def on_pose_name(name, source, tgt_kps):
        try:
            kps = pose_from_name(pt, name)
        except InputError as e:
            return tgt_kps, joints_table(tgt_kps), target_preview(pt, tgt_kps, source), warn(e)
        return set_target(kps, source, f"Target pose: **{name}**.")

    def on_pose_file(path, source, tgt_kps):
        if path is None:
            return tgt_kps, joints_table(tgt_kps), target_preview(pt, tgt_kps, source), ""
        try:
            kps = pose_from_file(pt, path)
        except InputError as e:
            return tgt_kps, joints_table(tgt_kps), target_preview(pt, tgt_kps, source), warn(e)
        return set_target(kps, source, f"Target pose from **{Path(path).name}**.")

    def on_table(rows, source, tgt_kps):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", KeypointWarning)
                kps = keypoints_from_table(rows, h, w)
        except InputError as e:
            return tgt_kps, joints_table(tgt_kps), target_preview(pt, tgt_kps, source), warn(e)
        status = "Target pose edited."
        for record in caught:  # a joint placed past the frame: say why it vanished
            if issubclass(record.category, KeypointWarning):
                message = html.escape(str(record.message))
                gr.Warning(message)
                status += f" {message}."
        return set_target(kps, source, status)

    def on_click(joint, source, tgt_kps, evt: gr.SelectData):
        try:
            y, x = click_to_frame(evt.index, h, w)
            kps = move_joint(tgt_kps, joint, y, x)
        except InputError as e:
            return tgt_kps, joints_table(tgt_kps), target_preview(pt, tgt_kps, source), warn(e)
        return set_target(kps, source, f"Moved **{joint}** to (y={y}, x={x}).")

    def on_generate(source, tgt_kps, paste_back):
        try:
            out = run_generate(pt, source, tgt_kps, paste_back)
        except InputError as e:
            return None, None, warn(e)
        path = Path(tempfile.mkdtemp(dir=downloads)) / "posetransfer-result.png"
        save_image(out, path)
        h_out, w_out = out.shape[:2]
        return enlarge(out), str(path), f"Done: {h_out}x{w_out} image (shown enlarged)."

    with gr.Blocks(title="posetransfer", analytics_enabled=False) as demo:
        src_state = gr.State(None)
        tgt_state = gr.State(initial_kps)
        gr.Markdown(INTRO)
        gr.Markdown(model_summary(pt), elem_id="model-info")
        with gr.Tab("Transfer", elem_id="transfer-tab"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=220):
                    src_image = gr.Image(
                        label="Source photo",
                        type="numpy",
                        sources=["upload", "clipboard"],
                        height=300,
                        elem_id="source-photo",
                    )
                    src_overlay = gr.Image(
                        label="Detected skeleton",
                        interactive=False,
                        format="png",
                        height=DISPLAY_HEIGHT,
                        elem_id="source-skeleton",
                    )
                with gr.Column(scale=1, min_width=260):
                    pose_name = gr.Radio(
                        pose_choices, value=DEFAULT_POSE, label="Target pose", elem_id="pose-name"
                    )
                    pose_file = gr.File(
                        label="...or upload a target photo or an OpenPose .json",
                        file_types=["image", ".json"],
                        type="filepath",
                        elem_id="pose-file",
                    )
                with gr.Column(scale=1, min_width=220):
                    tgt_preview = gr.Image(
                        value=target_preview(pt, initial_kps, None),
                        label="Target skeleton (click: move joint)",
                        interactive=False,
                        format="png",
                        height=DISPLAY_HEIGHT,
                        elem_id="target-skeleton",
                    )
                    joint = gr.Dropdown(
                        list(JOINT_NAMES), value="right_wrist", label="Joint to move by clicking"
                    )
                with gr.Column(scale=1, min_width=220):
                    result = gr.Image(
                        label="Result",
                        interactive=False,
                        format="png",
                        height=DISPLAY_HEIGHT,
                        elem_id="result",
                    )
                    download = gr.File(label="Result at its true size", elem_id="download")
                    paste_back = gr.Checkbox(False, label="Paste back into the photo")
                    generate = gr.Button("Generate", variant="primary", elem_id="generate")
            status = gr.Markdown("Upload a source photo.", elem_id="status")
            with gr.Accordion("Target joints (frame pixels; -1 = missing)", open=False):
                table = gr.Dataframe(
                    joints_table(initial_kps),
                    headers=TABLE_HEADERS,
                    datatype=["str", "number", "number"],
                    row_count=N_JOINTS,
                    column_count=3,
                    static_columns=[0],
                    type="array",
                    interactive=True,
                    column_widths=["50%", "25%", "25%"],
                    elem_id="joint-table",
                )

        from posetransfer.app.animate import add_animate_tab

        add_animate_tab(gr, pt, downloads, warn)

        target_outputs = [tgt_state, table, tgt_preview, status]
        src_image.change(
            on_source,
            [src_image, tgt_state],
            [src_state, src_overlay, status, tgt_preview],
            concurrency_limit=1,
        )
        pose_name.input(on_pose_name, [pose_name, src_state, tgt_state], target_outputs)
        pose_file.change(
            on_pose_file, [pose_file, src_state, tgt_state], target_outputs, concurrency_limit=1
        )
        table.input(on_table, [table, src_state, tgt_state], target_outputs)
        tgt_preview.select(on_click, [joint, src_state, tgt_state], target_outputs)
        generate.click(
            on_generate,
            [src_state, tgt_state, paste_back],
            [result, download, status],
            concurrency_limit=1,
        )
    return demo


def launch(
    pose_transfer_or_checkpoint: PoseTransfer | str | Path | gr.Blocks,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    block: bool = True,
    quiet: bool = False,
) -> gr.Blocks:
    """Serve the page locally (never through a public share link).

    Args:
        pose_transfer_or_checkpoint: see `build_app`, or an already built page.
        host: interface to listen on ("0.0.0.0" for the local network).
        port: TCP port.
        block: keep serving until interrupted; False returns at once (call ``.close()``).
        quiet: do not print the URL.

    Returns:
        The running ``gr.Blocks``.
    """
    check_address(host, port)  # before the page is built: a wrong host or port fails fast
    demo = pose_transfer_or_checkpoint
    if not isinstance(demo, gr.Blocks):
        demo = build_app(demo)
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            ssr_mode=False,
            inbrowser=False,
            prevent_thread_lock=not block,
            quiet=quiet,
            show_error=True,
            footer_links=[],
        )
    except OSError as e:
        why = "port in use" if "empty port" in str(e) else str(e)
        raise InputError(
            f"port={port}: cannot serve on {host}:{port} ({why}); choose another port", arg="port"
        )
    return demo


def check_address(host: str, port: int) -> None:
    """Refuse a host that does not resolve or is not this machine's, or a port in use.

    Binds a socket to (host, port) and closes it, which is what the server will do: the error
    says which of the two failed instead of Gradio's "cannot find an empty port".

    Raises:
        InputError: naming ``host`` or ``port``.
    """
    try:
        if host.rstrip(".").lower().endswith(".invalid"):  # RFC 6761: never resolves; no query
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(
            f"host={host!r}: not a name or address this machine can resolve "
            f"({getattr(e, 'strerror', None) or e}); use 127.0.0.1 (this machine) or 0.0.0.0 "
            "(the local network)",
            arg="host",
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(
                    f"port={port}: {host}:{port} is in use (another server?); choose another port",
                    arg="port",
                ) from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise InputError(
                    f"host={host!r}: {address[0]} is not an address of this machine; use "
                    "127.0.0.1 or 0.0.0.0",
                    arg="host",
                ) from None
            if e.errno == errno.EACCES:
                raise InputError(
                    f"port={port}: not allowed to serve on it (ports under 1024 need "
                    "privileges); choose a port of 1024 or more",
                    arg="port",
                ) from None
            raise InputError(
                f"host={host!r}: cannot serve on {host}:{port} ({e.strerror or e})", arg="host"
            ) from None
