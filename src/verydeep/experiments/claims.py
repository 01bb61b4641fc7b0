"""The claims ledger: every claim of the two papers that a reproduction can test, with its source, the experiment
that tests it, the quantity compared, the two configurations and the direction.

A claim reads "``a`` is ``relation`` than ``b`` in ``quantity``" over the seeds of both; ``evidence.decide``
turns the runs' values into reproduced, contradicted or inconclusive. Labels in braces (``{deep}``) are filled
from the experiment's arguments (the depths compared, say), so a claim holds for the depths a user asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..evidence import Relation


@dataclass(frozen=True)
class Claim:
    key: str  # a short stable name, e.g. "fig6-plain-degrades"
    source: str  # where the paper makes it
    statement: str  # the claim, as the report states it; labels in braces as in ``a`` and ``b``
    experiment: str  # the experiment whose runs test it
    quantity: str  # the name of one of that experiment's quantities
    a: str  # the run label of one side ...
    b: str  # ... and of the other
    relation: Relation  # a is lower / higher than b, equivalent to it within ``margin``, or not higher by it
    paper: str  # the paper's own figures for it
    margin: float | None = None  # equivalence claims: the band, in the quantity's units (error: a fraction)
    quantity_b: str | None = None  # b's quantity where it differs from a's (two test protocols of one run)
    not_tested: str = ""  # why no run of ours can test it yet (then it is listed, never judged)

    def labels(self, names: dict[str, str]) -> tuple[str, str]:
        return self.a.format(**names), self.b.format(**names)


CLAIMS: tuple[Claim, ...] = (
    # The degradation problem (ResNet Sec. 4.1 on ImageNet, Sec. 4.2 on CIFAR-10)
    Claim("resnet-fig6-plain-degrades", "ResNet Fig. 6 (left), Fig. 4 (left)",
          "the deeper plain net has the higher training error: the degradation problem",
          "degradation", "train_error", "plain-{deep}", "plain-{shallow}", "higher",
          "CIFAR-10: plain-56 above plain-20 throughout training; ImageNet: plain-34 above plain-18"),
    Claim("resnet-fig6-resnet-deeper-better", "ResNet Fig. 6 (middle), Fig. 4 (right)",
          "the deeper ResNet has the lower training error: residual learning reverses the degradation",
          "degradation", "train_error", "ResNet-{deep}", "ResNet-{shallow}", "lower",
          "CIFAR-10: ResNet-56 below ResNet-20; ImageNet: ResNet-34 below ResNet-18 (Table 2: 25.03 vs 27.88 val)"),
    Claim("resnet-sec41-degradation-addressed", "ResNet Sec. 4.1 (the weaker reading of Fig. 6, middle)",
          "the weaker reading: the deeper ResNet's training error is less than a point above the shallower's (the "
          "degradation problem \"well addressed\"); it never stands in for the claim above",
          "degradation", "train_error", "ResNet-{deep}", "ResNet-{shallow}", "not higher",
          "\"the degradation problem is well addressed in this setting\" (34 layers against 18)", margin=0.01),
    Claim("resnet-fig6-resnet-beats-plain-train", "ResNet Fig. 6, Fig. 4",
          "at the deeper depth the ResNet has a far lower training error than the plain net",
          "degradation", "train_error", "ResNet-{deep}", "plain-{deep}", "lower",
          "ImageNet 34 layers: ResNet's training error well below plain's throughout (Fig. 4)"),
    Claim("resnet-fig6-resnet-beats-plain-val", "ResNet Table 2, Table 6",
          "at the deeper depth the ResNet has a far lower validation error than the plain net",
          "degradation", "val_error", "ResNet-{deep}", "plain-{deep}", "lower",
          "ImageNet 34 layers: 25.03 vs 28.54 top-1 (at 18 layers the gap is small: 27.88 vs 27.94); CIFAR-10 "
          "56 layers: 6.97 vs about 13"),
    Claim("resnet-fig4-resnet-converges-faster", "ResNet Sec. 4.1 (Fig. 4, 18 layers)",
          "at equal depth the ResNet converges faster early on: a lower training error over the first "
          "tenth of training",
          "degradation", "early_train_error", "ResNet-{shallow}", "plain-{shallow}", "lower",
          "\"ResNet eases the optimization by providing faster convergence at the early stage\" (18 layers)"),
    # Gradient norms (ResNet Sec. 4.1): each side is the deeper plain net's own reading against a line fixed before
    # any verdict seed ran (experiments/gradients.py)
    Claim("resnet-sec41-plain-gradients-do-not-vanish", "ResNet Sec. 4.1",
          "in the deeper plain net no gradient vanishes: every conv layer's weight-gradient norm stays above 1% of "
          "the last layer's (log10 above -2), at initialisation and at the end of training",
          "gradients", "gradient_floor", "plain-{deep}", "plain-{deep}", "higher",
          '"neither forward nor backward signals vanish" (plain nets with BN)', quantity_b="vanishing_line"),
    Claim("resnet-sec41-plain-gradients-healthy", "ResNet Sec. 4.1",
          "in the deeper plain net the gradient norms are healthy: every conv layer's within two decades of every "
          "other's (log10 of largest over smallest below 2), at initialisation and at the end of training",
          "gradients", "gradient_spread", "plain-{deep}", "plain-{deep}", "lower",
          '"the backward propagated gradients exhibit healthy norms with BN"', quantity_b="healthy_band"),
    # Layer responses (ResNet Sec. 4.2, Fig. 7)
    Claim("resnet-fig7-resnet-weaker-deep", "ResNet Fig. 7",
          "at the deeper depth the ResNet's 3x3 layers respond more weakly than the plain net's",
          "layer_responses", "response_std", "ResNet-{deep}", "plain-{deep}", "lower",
          "std of each 3x3 layer's response (after BN, before the addition): ResNets below plain nets"),
    Claim("resnet-fig7-resnet-weaker-shallow", "ResNet Fig. 7",
          "at the shallower depth the ResNet's 3x3 layers respond more weakly than the plain net's",
          "layer_responses", "response_std", "ResNet-{shallow}", "plain-{shallow}", "lower",
          "ResNet-20 below plain-20"),
    Claim("resnet-fig7-deeper-resnet-weaker", "ResNet Fig. 7",
          "the deeper ResNet responds more weakly still",
          "layer_responses", "response_std", "ResNet-{deep}", "ResNet-{shallow}", "lower",
          "ResNet-110 below ResNet-56 below ResNet-20"),
    # Shortcuts (ResNet Sec. 4.1, Table 3)
    Claim("resnet-table3-b-beats-a", "ResNet Table 3",
          "projection shortcuts where dimensions grow (B) are better than zero-padding (A)",
          "shortcuts", "val_error", "option B", "option A", "lower",
          "ResNet-34: B 24.52 vs A 25.03 top-1 (10-crop)"),
    Claim("resnet-table3-c-beats-b", "ResNet Table 3",
          "projections on every shortcut (C) are marginally better than B",
          "shortcuts", "val_error", "option C", "option B", "lower",
          "ResNet-34: C 24.19 vs B 24.52 top-1, \"marginally better\""),
    Claim("resnet-table3-projections-not-essential", "ResNet Table 3, Sec. 4.1",
          "A, B and C lie within a small band (the widest pair, A and C, within 1 point): projections are not "
          "essential for addressing the degradation problem",
          "shortcuts", "val_error", "option A", "option C", "equivalent",
          "A to C spans 0.84 points top-1 (25.03 to 24.19), the margin here rounds it up to 1 point",
          margin=0.01),
    # The ResNet-110 warm-up (ResNet Sec. 4.2)
    Claim("resnet-sec42-warmup-starts-resnet110", "ResNet Sec. 4.2",
          "ResNet-110 at lr 0.1 from the start is slow to begin converging; 0.01 until the training error is "
          "below 80% starts it: a lower training error over the first few hundred steps",
          "warmup", "run_train_error", "warm-up", "lr 0.1 from the start", "lower",
          "\"0.1 is slightly too large to start converging\"; with 0.01 for about 400 iterations it converges"),
    # VGG depth (VGG Sec. 4.1, Table 3)
    Claim("vgg-table3-depth-helps", "VGG Table 3",
          "error falls with depth: D (16 weight layers) is better than A (11)",
          "vgg_depth", "val_error", "D", "A", "lower",
          "S=256: A 29.6, D 27.0 top-1"),
    Claim("vgg-table3-depth-saturates", "VGG Table 3, Sec. 4.1",
          "the error saturates at 19 layers: E lies within 1 point of D",
          "vgg_depth", "val_error", "E", "D", "equivalent",
          "S=256: D 27.0, E 27.3 top-1 (jittered S: 25.6, 25.5)", margin=0.01),
    Claim("vgg-table3-lrn-does-not-help", "VGG Table 3, Sec. 4.1",
          "LRN does not improve A: A-LRN lies within 1 point of A",
          "vgg_depth", "val_error", "A-LRN", "A", "equivalent",
          "A 29.6, A-LRN 29.7 top-1", margin=0.01),
    Claim("vgg-table3-c-beats-b", "VGG Table 3, Sec. 4.1",
          "C is better than B: the extra non-linearity of the 1x1 convs helps",
          "vgg_depth", "val_error", "C", "B", "lower",
          "S=256: B 28.7, C 28.1 top-1"),
    Claim("vgg-table3-d-beats-c", "VGG Table 3, Sec. 4.1",
          "D is better than C at equal depth: 3x3 context beats 1x1",
          "vgg_depth", "val_error", "D", "C", "lower",
          "S=256: C 28.1, D 27.0 top-1"),
    Claim("vgg-sec41-b-beats-shallow-5x5", "VGG Sec. 4.1",
          "B is better than the shallow net made from it by replacing each pair of 3x3 convs with one 5x5",
          "vgg_depth", "val_error", "B random", "B-5x5", "lower",
          "the 5x5 net's top-1 error was 7% higher than B's (centre crop)"),
    Claim("vgg-table3-scale-jittering", "VGG Table 3, Sec. 3.1",
          "scale jittering in training beats a fixed training scale",
          "vgg_depth", "val_error", "D jittered", "D fixed scale", "lower",
          "D: S in [256, 512] 25.6 vs S=256 27.0 top-1 (Q = 384 and 256)"),
    # Initialising from A (VGG Sec. 3.1)
    Claim("vgg-sec31-d-from-a-faster", "VGG Sec. 3.1",
          "D started from a trained A reaches A's final validation error in fewer steps than D from random",
          "vgg_init", "steps_to_a", "D from A", "D random", "lower",
          "the deep nets were started from A's first four convs and last three FC layers"),
    Claim("vgg-sec31-e-from-a-faster", "VGG Sec. 3.1",
          "E started from a trained A reaches A's final validation error in fewer steps than E from random",
          "vgg_init", "steps_to_a", "E from A", "E random", "lower",
          "as for D"),
    Claim("vgg-sec31-bad-init-stalls-deep-nets", "VGG Sec. 3.1",
          "a bad initialisation stalls a deep net where it does not stall a shallow one: D from N(0, 0.01^2) stays "
          "near chance while A from the same initialisation learns",
          "vgg_init", "val_error", "D random", "A", "higher",
          '"bad initialisation can stall learning due to the instability of gradient in deep nets"',
          not_tested="no faithful small-scale test: within the CPU presets' budgets the paper's N(0, 0.01^2) "
          "leaves A itself at chance level on [0, 1]-scaled pixels (the quick preset's calibration), so a stall "
          "of D cannot be told from A's; the full preset trains A with it for 370k iterations, where the test "
          "is D from N(0, 0.01^2) against that A"),
    # Test protocols (ResNet Sec. 3.4, VGG Sec. 4.3)
    Claim("resnet-sec34-ten-crop-beats-centre", "ResNet Sec. 3.4 (and AlexNet's testing)",
          "ten-crop testing beats the single centre view",
          "protocols", "tencrop_error", "ResNet-{shallow}", "ResNet-{shallow}", "lower",
          "the papers report 10-crop figures for their comparisons; ten crops lower the error by about a point",
          quantity_b="centre_error"),
    Claim("vgg-table5-dense-and-multicrop", "VGG Table 5",
          "dense evaluation and multi-crop combined beat each alone",
          "protocols", "combined_error", "D", "D", "lower",
          "D: dense 24.8, multi-crop 24.6, both 24.4 top-1", quantity_b="dense_error",
          not_tested="dense evaluation needs the paper's FC head made convolutional at 224 px; on 28 px images "
          "the small head has no dense form (an image folder of 224 px images runs it: verydeep evaluate)"),
)  # fmt: skip


def claims_of(experiment: str) -> tuple[Claim, ...]:
    return tuple(c for c in CLAIMS if c.experiment == experiment)
