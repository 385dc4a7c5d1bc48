"""Publishing a saved model: to a local folder, or to the Hugging Face hub when the user asks."""

from __future__ import annotations

import shutil
from pathlib import Path

from lcid.errors import InputError
from lcid.vlm.ensemble import ENSEMBLE_FILE, VLMEnsemble
from lcid.vlm.model import FlamingoVLM


def push_to_folder(source: str | Path, target: str | Path) -> Path:
    """Load the model (checking it is complete) and write it with ``save_pretrained`` to ``target``;
    an ensemble folder is checked the same way and copied whole."""
    from lcid.io.atomic import atomic_dir

    if (Path(source) / ENSEMBLE_FILE).is_file():
        VLMEnsemble.from_pretrained(source)
        with atomic_dir(target) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".lcid-tmp-*"))
        return Path(target)
    model = FlamingoVLM.from_pretrained(str(source))
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, config=model.cfg.to_dict())
        record = Path(source) / "training.json"
        if record.is_file():
            (tmp / "training.json").write_text(record.read_text())
    return Path(target)


def push_to_hub(source: str | Path, repo_id: str, *, private: bool = True) -> str:
    """Upload the model folder to ``repo_id`` with huggingface_hub (needs a login and network)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(source), repo_id=repo_id, commit_message="Upload lcid model")
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise InputError(f"upload to {repo_id} failed ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})") from exc
    return str(getattr(info, "commit_url", repo_id))
