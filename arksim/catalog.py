"""Which models exist, which endpoint ids point at them, and what kind of task each makes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    name: str  # `name-version`, as shown in task objects
    default_resolution: str = "1080p"

    @property
    def kind(self) -> str:
        # Ark has one task endpoint for both; the model decides what comes out.
        return "3d" if "seed3d" in self.name else "video"


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("doubao-seedance-1-0-pro-250528", "1080p"),
        ModelInfo("doubao-seedance-1-0-pro-fast-251015", "1080p"),
        ModelInfo("doubao-seedance-1-0-lite-t2v-250428", "720p"),
        ModelInfo("doubao-seedance-1-0-lite-i2v-250428", "720p"),
        ModelInfo("doubao-seedance-1-5-pro-251215", "720p"),
        ModelInfo("doubao-seed3d-1-0-250928", "1080p"),
    )
}
DEFAULT_VIDEO_MODEL = "doubao-seedance-1-0-pro-250528"
SEED3D_MODEL = "doubao-seed3d-1-0-250928"

# Inference endpoints ("推理接入点") as a console would have created them. Unknown `ep-`
# ids answer 404 InvalidEndpointOrModel.NotFound, as Ark does for an endpoint you don't have.
DEFAULT_ENDPOINTS: dict[str, str] = {
    "ep-20250528154802-pro01": "doubao-seedance-1-0-pro-250528",
    "ep-20251015101500-fast1": "doubao-seedance-1-0-pro-fast-251015",
    "ep-20250428120000-lite1": "doubao-seedance-1-0-lite-t2v-250428",
    "ep-20250428120001-lite2": "doubao-seedance-1-0-lite-i2v-250428",
    "ep-20250928090000-s3d01": "doubao-seed3d-1-0-250928",
}


def _aliases() -> dict[str, str]:
    """`doubao-seedance-1-0-pro` (no version) means its newest version, like Ark does."""
    aliases: dict[str, str] = {}
    for name in sorted(MODELS):
        aliases[name.rsplit("-", 1)[0]] = name
    return aliases


ALIASES = _aliases()


def resolve_model(requested: str, endpoints: dict[str, str]) -> ModelInfo | None:
    """The model a `model` request field (model name or endpoint id) runs on; None if unknown."""
    if requested in MODELS:
        return MODELS[requested]
    if requested in ALIASES:
        return MODELS[ALIASES[requested]]
    if requested in endpoints:
        name = endpoints[requested]
        return MODELS.get(name) or ModelInfo(name)
    return None
