"""What decides a run (``TrainConfig``, written resolved to the run folder's config.json) and where its settings
come from: a resumed run's record, a config file, the command line, in rising order."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .recipes import Recipe, field_types, get_recipe, override
from .registry import get_entry, implied_options, is_registered


@dataclass
class TrainConfig:
    """Everything that decides a run. Written, resolved, to the run folder's config.json."""

    model: str  # a registered name; for a network built in Python (fit(..., model=net)), a name of its own
    data: str = "fashion-mnist"
    data_dir: str | None = None
    recipe: str | None = None  # default: the paper's recipe for this model
    overrides: dict = field(default_factory=dict)  # recipe fields changed from the paper's values
    model_options: dict = field(default_factory=dict)
    epochs: float | None = None  # length of the run; default: the recipe's iterations
    iters: int | None = None
    subset: int | None = None
    val_size: int | None = None
    image_size: int | None = None  # synthetic data and image folders: the side (default: the folder's own, or 224)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 where the hardware has it (CUDA, CPUs with bf16 instructions)
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    micro_batch: int | None = None  # gradient accumulation: split each step's batch into micro-batches
    init_from: str | None = None  # VGG Sec. 3.1: start from a trained configuration A
    log_every: int = 50  # steps between metrics rows
    checkpoint_every: int | None = None  # steps between checkpoints (always at the end of each epoch)
    workers: int | None = None
    skip_bad: bool = False
    sync_bn: bool = False
    test: bool = False  # evaluate once on the test split at the end (never used for any choice)

    IDENTITY = ("model", "data", "recipe", "overrides", "model_options", "subset", "val_size", "seed", "init_from")

    def identity(self) -> dict:
        """What makes two configs the same run, compared by meaning: a model by its canonical name (vgg16 is
        vgg_d), the recipe by its resolved values ("0.05" and 0.05, lists and tuples alike)."""
        fields = {key: getattr(self, key) for key in self.IDENTITY if key not in ("overrides", "recipe")}
        fields["model"] = get_entry(self.model).name if is_registered(self.model) else self.model
        fields["recipe"] = self.resolved_recipe()
        if self.image_size is not None:  # added after 0.1: keys of runs without it stay as they were
            fields["image_size"] = self.image_size
        options = {**implied_options(self.model), **self.model_options}  # vgg16_bn is vgg_d with batch_norm
        fields["model_options"] = json.loads(json.dumps(options))
        return fields

    def resolved_recipe(self) -> Recipe:
        """The recipe named (default: the one the model's paper trained it with) with the overrides applied."""
        return override(get_recipe(self.recipe or get_entry(self.model).recipe), **self.overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # settings that never changed a run's numbers and are gone (fuse_norm: slower on every CPU measured): a
    # checkpoint or config file that holds one still reads
    RETIRED = ("fuse_norm",)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        data = {key: value for key, value in data.items() if key not in cls.RETIRED}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**data)


def read_config_file(path: str) -> dict:
    """A JSON or YAML file of settings, keys with dashes or underscores."""
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings, e.g. 'model: resnet20'")
    return {k.replace("-", "_"): v for k, v in data.items()}


def settings_for(given: dict, resumed: TrainConfig | None = None) -> TrainConfig:
    """A run's config from, in rising order: the ``resumed`` run's (its config.json's), the ``config`` file,
    the other settings ``given`` (the command line's flags, by their names: a recipe field goes into the
    overrides, ``option`` pairs into the model options)."""
    settings: dict = {}
    if resumed is not None:
        settings.update(resumed.to_dict())
        settings = {**settings, "overrides": dict(settings.get("overrides", {}))}
    if given.get("config"):
        for key, value in read_config_file(given["config"]).items():
            if key in field_types():
                settings.setdefault("overrides", {})[key] = value
            elif key == "options":
                settings.setdefault("model_options", {}).update(value)
            else:
                settings[key] = value
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in given.items():
        if key in field_types():
            settings.setdefault("overrides", {})[key] = value
        elif key == "option":
            settings.setdefault("model_options", {}).update(dict(value))
        elif key in names:
            settings[key] = value
    if "model" not in settings:
        raise ValueError("give --model NAME (see `verydeep list`), or --out DIR --resume to continue a run")
    if "epochs" in given and "iters" in given:
        raise ValueError("give --epochs or --iters, not both")
    if "epochs" in given:
        settings["iters"] = None
    if "iters" in given:
        settings["epochs"] = None
    return TrainConfig.from_dict(settings)
