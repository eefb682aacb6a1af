"""Fault-sweep cases of `serve` and `index` (issue 17): hostile HTTP requests to two shared live servers,
galleries whose manifest points out of the folder, locks, partial and duplicate adds, unreadable folders,
tokens that must not leak. `serve_fixtures` makes their inputs; `start_servers` the two servers."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from fault_case import Case, Request
from live import Server, chunked, free_port, jpeg, multipart, png_header

TOKEN = "sweep-secret-token-5b1d9e"  # the token server's; must never show up anywhere
_NO_ID = "0" * 16


def serve_fixtures(f: dict) -> None:
    """Add to `f`: galleries (served, spare, duplicate, partial, locked, jailbroken), their item ids, source
    folders, a victim file and folder outside every gallery."""
    import numpy as np  # lazy: listing the cases (their names) imports nothing heavy

    from reid_export.serve.indexing import build_gallery  # lazy: as numpy

    b, onnx = f["base"], str(f["onnx"])
    crops = sorted((f["market"] / "bounding_box_test").glob("*.jpg"))
    base = build_gallery(f["market"], onnx, b / "g_base", progress=False)
    manifest = json.loads((base / "gallery.json").read_text())
    f["ids"] = [item["id"] for item in manifest["items"]]
    for name in ("g_open", "g_token", "g_spare", "g_partial", "g_garbage_lock", "g_empty_lock", "g_stale_lock",
                 "g_jail_abs", "g_jail_dotdot", "g_jail_link", "g_jail_shard", "g_jail_crops", "g_jail_abs_add"):
        f[name] = shutil.copytree(base, b / name, symlinks=True)
    f["victim"] = b / "victim.txt"
    f["victim"].write_text("the user's secret\n")
    _edit_manifest(f["g_jail_abs"], lambda m: m["items"][0].update(image=str(f["victim"])))
    _edit_manifest(f["g_jail_abs_add"], lambda m: m["items"][0].update(image=str(f["victim"])))
    _edit_manifest(f["g_jail_dotdot"], lambda m: m["items"][0].update(image="../../victim.txt"))
    link = f["g_jail_link"] / "crops" / manifest["items"][0]["image"]
    link.unlink()
    link.symlink_to(f["victim"])
    np.save(b / "victim_shard.npy", np.load(base / "shards" / manifest["shards"][0]["file"]))
    _edit_manifest(f["g_jail_shard"], lambda m: m["shards"][0].update(file="../../victim_shard.npy"))
    photos = shutil.copytree(base / "crops", b / "user_photos")  # the crops, and a photo of the user's own
    (photos / "holiday.jpg").write_bytes(jpeg(seed=9))
    f["user_photos"] = photos
    shutil.rmtree(f["g_jail_crops"] / "crops")
    (f["g_jail_crops"] / "crops").symlink_to(photos, target_is_directory=True)
    (f["g_garbage_lock"] / ".gallery.json.lock").write_text("{not json at all")
    (f["g_empty_lock"] / ".gallery.json.lock").write_text("")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (f["g_stale_lock"] / ".gallery.json.lock").write_text(json.dumps({
        "pid": gone.pid, "host": socket.gethostname(), "command": "reid-export index add", "since": "earlier"}))
    dup_src = b / "dup_src"
    dup_src.mkdir()
    for crop in crops[:3]:
        shutil.copy(crop, dup_src / crop.name)
    f["dup_src"] = dup_src
    f["g_dup"] = build_gallery(dup_src, onnx, b / "g_dup", progress=False)
    f["g_dup_allowed"] = shutil.copytree(f["g_dup"], b / "g_dup_allowed")
    partial = b / "partial_src"  # 4 crops, a corrupt one, 3 more (all of other bytes than the gallery's)
    partial.mkdir()
    for i, crop in enumerate(sorted((f["market"] / "bounding_box_train").glob("*.jpg"))[:8]):
        (partial / f"a{i}.jpg").write_bytes(crop.read_bytes()[:200] if i == 4 else crop.read_bytes())
    f["partial_src"] = partial
    unreadable = b / "unreadable"
    unreadable.mkdir()
    for i in range(300):
        (unreadable / f"u{i:04d}.jpg").write_bytes(b"not an image %d" % i)
    f["unreadable"] = unreadable
    (b / "no_images").mkdir()
    (b / "no_images" / "readme.txt").write_text("no crops here")
    f["no_images"] = b / "no_images"


def start_servers(f: dict) -> dict[str, Server]:
    """The open server (no token, 1 MB uploads) and the token server, started together."""
    servers = {"open": Server(["--model", str(f["onnx"]), "--gallery", str(f["g_open"]), "--max-upload-mb", "1"]),
               "token": Server(["--model", str(f["onnx"]), "--gallery", str(f["g_token"])], token=TOKEN)}
    try:
        for server in servers.values():
            server.wait_ready()
            server.items = f["ids"]
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def serve_cases(f: dict) -> list[Case]:
    b, onnx, q = f["base"], str(f["onnx"]), "-q"
    ids = f.get("ids") or [_NO_ID, _NO_ID]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    own = {"Origin": "http://127.0.0.1:{port}"}
    crop, tiny = jpeg(), jpeg(4, 4)

    def up(parts, headers=None, server="open", path="/v1/gallery") -> Request:
        body, kind = multipart(parts)
        return Request("POST", path, {"Content-Type": kind, **(headers or {})}, body, server)

    def get(path: str, headers=None, server="open") -> Request:
        return Request("GET", path, headers or {}, server=server)

    def not_added(source: str, server: str = "open") -> Callable[[], str | None]:
        return lambda: f"{source} was added to the gallery" if source in f["servers"][server].sources() else None

    def still_listed(server: str = "open") -> Callable[[], str | None]:
        return lambda: None if f["servers"][server].sources() else "the gallery lost its items"

    def intact(*paths: Path) -> Callable[[], str | None]:
        return lambda: next((f"{p} is gone" for p in paths if not p.exists()), None)

    def items(gallery: str, n: int) -> Callable[[], str | None]:
        def check():
            found = len(json.loads((f[gallery] / "gallery.json").read_text())["items"])
            return None if found == n else f"{gallery} holds {found} items, expected {n}"
        return check

    def listed(gallery: str, item: str) -> Callable[[], str | None]:
        return lambda: None if item in (f[gallery] / "gallery.json").read_text() else f"{item} left {gallery}"

    def lock_keeps_no_token() -> str | None:
        lock = f["g_token"] / ".gallery.json.lock"
        if not lock.exists():
            return None
        if TOKEN in lock.read_text():
            return f"{lock} holds the token"
        return None if lock.stat().st_mode & 0o077 == 0 else f"{lock} is readable by others ({lock.stat().st_mode:o})"

    def serve_cmd(*extra: str, gallery: str = "g_spare") -> list[str]:
        return ["serve", "--model", onnx, "--gallery", str(f[gallery]), "--port", str(free_port()), *extra]

    foreign = {"Host": "evil.example"}
    xorigin = {"Origin": "http://evil.example"}
    host_codes = (400, 421)
    return [
        # -- browsers: foreign Host (DNS rebinding), foreign Origin (cross-site writes), CORS
        Case("serve: a foreign Host reads nothing", [], host_codes, "host", "security",
             http=get("/v1/gallery", foreign),
             forbid=['"items"']),
        Case("serve: a foreign Host with a port", [], host_codes, "host", "security",
             http=get("/v1/info", {"Host": "attacker.example:{port}"}), forbid=['"runtime"']),
        Case("serve: a rebinding name of 127.0.0.1", [], host_codes, "host", "security",
             http=get("/v1/gallery", {"Host": "127.0.0.1.nip.io:{port}"})),
        Case("serve: a foreign Host on the item image", [], host_codes, "host", "security",
             http=get("/v1/gallery/{item}/image", foreign)),
        Case("serve: a foreign Host cannot add", [], host_codes, "host", "security",
             http=up([("images", "foreign-host.jpg", crop)], foreign), check=not_added("foreign-host.jpg")),
        Case("serve: Host localhost is served", [], 200, '"items"', "security",
             http=get("/v1/gallery", {"Host": "localhost:{port}"})),
        Case("serve: Host 127.0.0.1 is served", [], 200, '"items"', "security", http=get("/v1/gallery")),
        Case("serve: a cross-origin multipart add is refused", [], 403, "origin", "security",
             http=up([("images", "cross-origin.jpg", crop)], xorigin), check=not_added("cross-origin.jpg")),
        Case("serve: a cross-origin delete is refused", [], 403, "origin", "security",
             http=Request("DELETE", "/v1/gallery/{last}", xorigin), check=still_listed()),
        Case("serve: Origin null cannot add", [], 403, "origin", "security",
             http=up([("images", "null-origin.jpg", crop)], {"Origin": "null"}), check=not_added("null-origin.jpg")),
        Case("serve: a look-alike origin cannot add", [], 403, "origin", "security",
             http=up([("images", "lookalike.jpg", crop)], {"Origin": "http://127.0.0.1.evil.example:{port}"}),
             check=not_added("lookalike.jpg")),
        Case("serve: another port's origin cannot add", [], 403, "origin", "security",
             http=up([("images", "other-port.jpg", crop)], {"Origin": "http://127.0.0.1:1"}),
             check=not_added("other-port.jpg")),
        Case("serve: its own origin can add", [], 201, '"added"', "security",
             http=up([("images", "own-origin.jpg", crop)], own)),
        Case("serve: a client without Origin can add", [], 201, '"added"', "security",
             http=up([("images", "no-origin.jpg", crop)])),
        Case("serve: a cross-origin read gets no CORS header", [], (200, 400, 403), "", "security",
             http=get("/v1/gallery", xorigin), forbid=["access-control-allow-origin"]),
        Case("serve: a CORS preflight is not granted", [], (400, 403, 404, 405), "", "security",
             http=Request("OPTIONS", "/v1/gallery", {**xorigin, "Access-Control-Request-Method": "POST"}),
             forbid=["access-control-allow-origin"]),
        # -- the token: required, and never shown
        Case("serve: no token, no gallery", [], 401, "token", "security", http=get("/v1/gallery", server="token"),
             forbid=['"items"']),
        Case("serve: a wrong token", [], 401, "token", "security",
             http=get("/v1/info", {"Authorization": "Bearer guess"}, "token")),
        Case("serve: a Basic credential is not the token", [], 401, "token", "security",
             http=get("/v1/info", {"Authorization": f"Basic {TOKEN}"}, "token")),
        Case("serve: the token in the query string does not count", [], 401, "token", "security",
             http=get(f"/v1/gallery?token={TOKEN}", server="token")),
        Case("serve: /v1/info does not show the token", [], 200, "runtime", "security",
             http=get("/v1/info", auth, "token"), forbid=[TOKEN]),
        Case("serve: /metrics does not show the token", [], 200, "reid", "security",
             http=get("/metrics", auth, "token"), forbid=[TOKEN]),
        Case("serve: the schema does not show the token", [], 200, "openapi", "security",
             http=get("/openapi.json", auth, "token"), forbid=[TOKEN]),
        Case("serve: a 401 does not echo the token", [], 401, "token", "security",
             http=get("/v1/gallery", {"Authorization": f"Bearer {TOKEN}x"}, "token"), forbid=[TOKEN]),
        Case("serve: the token server refuses a cross-origin add", [], (401, 403), "origin", "security",
             http=up([("images", "token-xorigin.jpg", crop)], {**auth, **xorigin}, "token"),
             check=not_added("token-xorigin.jpg", "token")),
        Case("serve: the token server refuses a foreign Host", [], host_codes, "host", "security",
             http=get("/v1/gallery", {**auth, **foreign}, "token")),
        Case("serve: the gallery lock holds no token and is private", [], 200, "ok", "security",
             http=get("/healthz", server="token"), check=lock_keeps_no_token),
        Case("index add on a served gallery does not print the token", ["index", "add", str(f["g_token"]),
                                                                       str(f["dup_src"]), "--model", onnx, q], 2,
             "serve", "security", forbid=[TOKEN]),
        Case("index remove on a served gallery does not print the token", ["index", "remove", str(f["g_token"]),
                                                                          ids[0]], 2, "serve", "security",
             forbid=[TOKEN], check=listed("g_token", ids[0])),
        # -- the gallery is a jail: a manifest naming files outside it is refused when opened
        Case("serve: a manifest naming an absolute path", serve_cmd(gallery="g_jail_abs"), (1, 2, 3), ids[0],
             "security", timeout_s=60),
        Case("serve: a manifest naming ../", serve_cmd(gallery="g_jail_dotdot"), (1, 2, 3), ids[0], "security",
             timeout_s=60),
        Case("serve: a crop replaced by a symlink out", serve_cmd(gallery="g_jail_link"), (1, 2, 3), ids[0],
             "security", timeout_s=60),
        Case("index remove: a manifest naming an absolute path", ["index", "remove", str(f["g_jail_abs"]), ids[-1]], 2,
             ids[0], "security", intact(f["victim"])),
        Case("index remove: a manifest naming ../", ["index", "remove", str(f["g_jail_dotdot"]), ids[-1]], 2, ids[0],
             "security", intact(f["victim"])),
        Case("index remove: a crop symlinked out", ["index", "remove", str(f["g_jail_link"]), ids[-1]], 2, ids[0],
             "security", intact(f["victim"])),
        Case("index remove: a shard file outside the gallery", ["index", "remove", str(f["g_jail_shard"]), ids[-1]],
             2, "shard", "security", intact(b / "victim_shard.npy")),
        Case("index remove: crops/ symlinked to the user's photos", ["index", "remove", str(f["g_jail_crops"]),
                                                                    ids[-1]], 2, "crops", "data-loss",
             intact(f["user_photos"] / "holiday.jpg")),
        Case("index add: a manifest naming an absolute path", ["index", "add", str(f["g_jail_abs_add"]),
                                                              str(f["dup_src"]), "--model", onnx, q], 2, ids[0],
             "security", intact(f["victim"])),
        # -- the API validates every field (4xx naming it), never a 500, nothing committed on a refusal
        Case("serve: camid beyond 64 bits", [], 422, "camid", "input",
             http=up([("images", "camid-big.jpg", crop), ("camid", None, b"%d" % 10**20)]),
             check=not_added("camid-big.jpg")),
        Case("serve: camid of 2**63", [], 422, "camid", "input",
             http=up([("images", "camid-2-63.jpg", crop), ("camid", None, b"%d" % 2**63)]),
             check=not_added("camid-2-63.jpg")),
        Case("serve: pid beyond 64 bits", [], 422, "pid", "input",
             http=up([("images", "pid-big.jpg", crop), ("pid", None, b"-%d" % 10**25)]),
             check=not_added("pid-big.jpg")),
        Case("serve: camid is a word", [], 422, "camid", "input",
             http=up([("images", "camid-word.jpg", crop), ("camid", None, b"front door")]),
             check=not_added("camid-word.jpg")),
        Case("serve: pid is a fraction", [], 422, "pid", "input",
             http=up([("images", "pid-frac.jpg", crop), ("pid", None, b"1.5")]), check=not_added("pid-frac.jpg")),
        Case("serve: exclude_camera of 10**25", [], 422, "exclude_camera", "input",
             http=up([("image", "q.jpg", crop), ("exclude_camera", None, b"%d" % 10**25)], path="/v1/search")),
        Case("serve: exclude_camera is a word", [], 422, "exclude_camera", "input",
             http=up([("image", "q.jpg", crop), ("exclude_camera", None, b"two")], path="/v1/search")),
        Case("serve: k of 0", [], 422, "k", "input", http=up([("image", "q.jpg", crop), ("k", None, b"0")],
                                                            path="/v1/search")),
        Case("serve: k over the maximum", [], 422, "k", "input",
             http=up([("image", "q.jpg", crop), ("k", None, b"1001")], path="/v1/search")),
        Case("serve: k of 10**30", [], 422, "k", "input",
             http=up([("image", "q.jpg", crop), ("k", None, b"%d" % 10**30)], path="/v1/search")),
        Case("serve: k is nan", [], 422, "k", "input",
             http=up([("image", "q.jpg", crop), ("k", None, b"nan")], path="/v1/search")),
        Case("serve: k sent as a file", [], 422, "k", "input",
             http=up([("image", "q.jpg", crop), ("k", "k.txt", b"5")], path="/v1/search")),
        Case("serve: a search without an image", [], 422, "image", "input",
             http=up([("k", None, b"5")], path="/v1/search")),
        Case("serve: a search with a valid crop", [], 200, '"results"', "input",
             http=up([("image", "q.jpg", crop), ("k", None, b"3")], path="/v1/search")),
        Case("serve: a page with limit 0", [], 422, "limit", "input", http=get("/v1/gallery?limit=0")),
        Case("serve: a page with offset -1", [], 422, "offset", "input", http=get("/v1/gallery?offset=-1")),
        Case("serve: a page with a word for limit", [], 422, "limit", "input", http=get("/v1/gallery?limit=ten")),
        Case("serve: a page with offset 10**30", [], (200, 422), "offset", "input",
             http=get("/v1/gallery?offset=" + "1" + "0" * 30)),
        Case("serve: the image of an unknown item", [], 404, "no gallery item", "input",
             http=get(f"/v1/gallery/{_NO_ID}/image")),
        Case("serve: an image path of ../etc/passwd", [], 404, "", "security",
             http=get("/v1/gallery/..%2F..%2F..%2Fetc%2Fpasswd/image"), forbid=["root:"]),
        Case("serve: deleting an unknown item", [], 404, "no gallery item", "input",
             http=Request("DELETE", f"/v1/gallery/{'f' * 16}")),
        Case("serve: PUT on the gallery", [], 405, "", "input", http=Request("PUT", "/v1/gallery")),
        # -- uploads: bombs, sizes, types, multipart that cannot be read
        Case("serve: a 20000x20000 PNG is an image bomb", [], 413, "pixel", "image",
             http=up([("images", "bomb.png", png_header(20000, 20000))], path="/v1/embed"),
             forbid=["corrupt"]),
        Case("serve: a 5000x5000 PNG is over the pixel limit", [], 413, "pixel", "image",
             http=up([("images", "big.png", png_header(5000, 5000))], path="/v1/embed")),
        Case("serve: a bomb as a search query", [], 413, "pixel", "image",
             http=up([("image", "bomb.png", png_header(30000, 30000))], path="/v1/search")),
        Case("serve: an empty upload", [], 422, "empty", "image", http=up([("images", "e.jpg", b"")],
                                                                         path="/v1/embed")),
        Case("serve: text named .jpg", [], 415, "not an image", "image",
             http=up([("images", "notes.jpg", b"dear diary")], path="/v1/embed")),
        Case("serve: a truncated JPEG", [], 422, "upload", "image",
             http=up([("images", "cut.jpg", crop[:300])], path="/v1/embed")),
        Case("serve: a 4 px crop", [], 422, "px", "image", http=up([("images", "tiny.jpg", tiny)],
                                                                  path="/v1/embed")),
        Case("serve: a failed add commits nothing", [], (413, 415, 422), "upload", "honest",
             http=up([("images", "good-then-bad.jpg", crop), ("images", "bad.jpg", crop[:300])]),
             check=not_added("good-then-bad.jpg")),
        Case("serve: 65 images in one request", [], 413, "64", "image",
             http=up([("images", f"{i}.jpg", tiny) for i in range(65)], path="/v1/embed")),
        Case("serve: three files to search", [], (400, 413, 422), "2", "image",
             http=up([("image", f"{i}.jpg", crop) for i in range(3)], path="/v1/search")),
        Case("serve: a file over --max-upload-mb", [], 413, "limit", "image",
             http=up([("images", "big.jpg", crop + b"\0" * 1_200_000)], path="/v1/embed")),
        Case("serve: a chunked upload over the limit", [], 413, "limit", "image",
             http=Request("POST", "/v1/embed", {"Content-Type": multipart([])[1], "Transfer-Encoding": "chunked"},
                          chunked(multipart([("images", "chunks.jpg", crop + b"\0" * 3_000_000)])[0]))),
        Case("serve: a Content-Length of 100 GB", [], 413, "limit", "image",
             http=Request("POST", "/v1/embed", {"Content-Type": multipart([])[1], "Content-Length": str(10**11)})),
        Case("serve: a 10,000-character file name", [], (400, 422), "filename", "image",
             http=up([("images", "n" * 10_000 + ".jpg", crop)], path="/v1/embed")),
        Case("serve: multipart without a boundary", [], (400, 422), "boundary", "image",
             http=Request("POST", "/v1/embed", {"Content-Type": "multipart/form-data"},
                          multipart([("images", "a.jpg", crop)])[0])),
        Case("serve: multipart cut off", [], (400, 422), "multipart", "image",
             http=Request("POST", "/v1/embed", {"Content-Type": multipart([])[1]},
                          multipart([("images", "a.jpg", crop)])[0][:-40])),
        Case("serve: JSON instead of multipart", [], (415, 422), "images", "image",
             http=Request("POST", "/v1/gallery", {"Content-Type": "application/json"}, b'{"images": []}')),
        Case("serve: images sent as a text field", [], 422, "images", "image",
             http=up([("images", None, b"a.jpg")], path="/v1/embed")),
        Case("serve: a Content-Length that is not a number", [], 400, "", "input",
             http=Request("POST", "/v1/embed", {"Content-Length": "lots"}, b"")),
        Case("serve: a 64 KB header", [], (200, 400, 413, 431), "", "input",
             http=get("/healthz", {"X-Padding": "p" * 65536})),
        # -- slow clients
        Case("serve: half a request head is dropped", [], (0, 400, 408), "", "serve",
             http=Request("GET", "/healthz", complete=False), timeout_s=60),
        Case("serve: a body that never comes is dropped", [], (0, 400, 408), "", "serve",
             http=Request("POST", "/v1/embed", {"Content-Type": multipart([])[1], "Content-Length": "5000"}, b"--",
                          ), timeout_s=60),
        # -- index: partial results, duplicates, locks, unreadable folders
        Case("index add past a corrupt image says what it skipped",
             ["index", "add", str(f["g_partial"]), str(f["partial_src"]), "--model", onnx, "--commit-every", "2",
              "--batch-size", "2", q], 0, "unreadable", "honest", items("g_partial", len(ids) + 7)),
        Case("index add of the same folder again skips duplicates",
             ["index", "add", str(f["g_dup"]), str(f["dup_src"]), "--model", onnx, q], 0, "duplicate", "honest",
             items("g_dup", 3)),
        Case("index add --allow-duplicates adds them",
             ["index", "add", str(f["g_dup_allowed"]), str(f["dup_src"]), "--model", onnx, "--allow-duplicates", q],
             0, "6 items", "honest", items("g_dup_allowed", 6)),
        Case("index remove with a garbage lock file", ["index", "remove", str(f["g_garbage_lock"]), ids[0]], 2, "lock",
             "honest", forbid=["wait for it to finish"]),
        Case("index remove with an empty lock file", ["index", "remove", str(f["g_empty_lock"]), ids[0]], 2, "lock",
             "honest", forbid=["wait for it to finish"]),
        Case("index remove takes over a dead writer's lock", ["index", "remove", str(f["g_stale_lock"]), ids[0]], 0,
             "removed 1", "honest"),
        Case("index build of 300 unreadable files", ["index", "build", "--data", str(f["unreadable"]), "--model", onnx,
                                                     "-o", str(b / "g_unreadable"), q], 2, "300", "honest",
             lambda: f"{b / 'g_unreadable'} exists" if (b / "g_unreadable").exists() else None),
        Case("index build of a folder without images", ["index", "build", "--data", str(f["no_images"]), "--model",
                                                        onnx, "-o", str(b / "g_none"), q], 2, "no images", "input"),
        Case("index build of a missing folder", ["index", "build", "--data", str(b / "nope"), "--model", onnx, "-o",
                                                 str(b / "g_nope"), q], 2, "no such file or folder", "input"),
        Case("index add to a folder that is not a gallery", ["index", "add", str(f["full_folder"]), str(f["dup_src"]),
                                                             "--model", onnx, q], 2, "not a gallery", "input"),
        Case("index add with another model", ["index", "add", str(f["g_spare"]), str(f["dup_src"]), "--model",
                                              f"torch={f['ckpt']}", q], 2, "was built with", "input"),
        Case("index remove of an unknown id", ["index", "remove", str(f["g_spare"]), "f" * 16], 2, "no gallery item",
             "input"),
        Case("index build onto an existing gallery", ["index", "build", "--data", str(f["market"]), "--model", onnx,
                                                      "-o", str(f["g_spare"]), q], 2, "already exists", "data-loss"),
        # -- serve's numbers: refused before anything starts
        *[Case(f"serve {option} {value}", serve_cmd(option, value), 2, option, "input", timeout_s=60)
          for option, value in [("--max-upload-mb", "nan"), ("--max-upload-mb", "inf"), ("--max-upload-mb", "-1"),
                                ("--max-batch", "0"), ("--max-delay-ms", "nan"), ("--instances", "-1")]],
        Case("serve --port 70000", ["serve", "--model", onnx, "--gallery", str(f["g_spare"]), "--port", "70000"], 2,
             "--port", "input", timeout_s=60),
    ]


def _edit_manifest(gallery: Path, change: Callable[[dict], None]) -> None:
    path = gallery / "gallery.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
