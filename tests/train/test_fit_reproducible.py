"""A tiny seeded training run gives the same weights run after run (a fingerprint recorded from the code).

Any change to the recipe (the order of random draws, the data mixing, a loss
term, the schedule, early stopping) moves these figures by far more than
the tolerance, which only absorbs the last bits that differ between CPU
kernels.
"""

import numpy as np
import pytest
import torch

from fieldpick.train.config import TrainConfig
from fieldpick.train.loop import train
from fieldpick.train.models import build

from .test_fit_trainer import impulse_data

torch.set_num_threads(1)

T = 512


def fingerprint(model):
    """Per-tensor sum and sum of squares of every float tensor of the state, in key order."""
    out = []
    for _, v in sorted(model.state_dict().items()):
        if v.dtype.is_floating_point:
            a = v.detach().double()
            out += [float(a.sum()), float((a * a).sum())]
    return np.array(out)


def split(data):
    held = np.isin(data.station, ["NC.S00", "NC.S01"])
    return data.subset(~held), data.subset(held)


def test_seeded_lppn_training_gives_the_recorded_weights(tmp_path):
    cfg = TrainConfig.from_dict(dict(
        architecture="lppn", model={"window_samples": T, "stride": 16, "width": 6, "context_blocks": 1},
        epochs=2, steps_per_epoch=3, batch_size=6, progress=False, out_dir=str(tmp_path / "a"), record_samples=T,
        patience=0, ema_decay=0.5, seed=3))
    model, history = train(cfg, *split(impulse_data()))
    got = fingerprint(model)
    assert got == pytest.approx(LPPN, rel=1e-5, abs=1e-6)
    assert [h["loss"] for h in history] == pytest.approx(LPPN_LOSSES, rel=1e-5)


def test_seeded_distillation_gives_the_recorded_weights(tmp_path):
    from fieldpick.train.distill import DistillConfig, distill

    cfg = TrainConfig.from_dict(dict(
        architecture="lppn", model={"window_samples": T, "stride": 16, "width": 4, "context_blocks": 1},
        epochs=2, steps_per_epoch=2, batch_size=4, progress=False, out_dir=str(tmp_path / "d"), record_samples=T,
        patience=0, seed=1))
    torch.manual_seed(0)
    teacher = build("phasenet", {"window_samples": T, "filters": [4, 6, 8]}).eval()
    dcfg = DistillConfig(feature_channels=3, teacher_layer="up_same.0", unlabeled_per_batch=0, selection_windows=4)
    train_data, val_data = split(impulse_data(n=10, seed=2))
    model, history, _ = distill(cfg, dcfg, teacher, train_data, val_data, cfg.out_dir)
    got = fingerprint(model)
    assert got == pytest.approx(DISTILL, rel=1e-5, abs=1e-6)
    assert [h["loss"] for h in history] == pytest.approx(DISTILL_LOSSES, rel=1e-5)


# recorded at the code as it stands; the state_dict's sha256 was 60776438af232a76de8314c82b1ea637485ca6a379372a9bf184ec63b96d4500 on x86-64
LPPN = [
    -0.223336735, 3.81184315, -0.00551564747, 8.43669293e-05, -0.0279791085, 0.0158258782, 9.94748116,
    8.24807926, 12.0008959, 12.001833, 2.40710833, 3.9492052, -0.0058248917, 0.00012620275, 0.17029002,
    0.0229447884, 9.98682731, 8.31384536, 11.9942858, 11.9886887, 0.404480754, 2.04030826, -0.000814285362,
    3.28017284e-05, 0.0252422914, 0.00524915329, 4.92659855, 4.04604395, 5.99547029, 5.99096587,
    2.58495944, 1.96783012, -0.0054214964, 2.52118052e-05, 0.179223319, 0.0116968037, 4.97859931,
    4.13188631, 6.00133175, 6.00268073, 1.61329009, 2.31277571, -0.0034248085, 3.50244758e-05,
    0.0996594274, 0.0055843541, 5.00133532, 4.17003571, 5.99913752, 5.99829783, -1.10385591, 3.70780477,
    0.0133427658, 7.43571469e-05, -0.066288396, 0.0128035245, 10.0018347, 8.33933075, 12.0053231,
    12.0106991, -3.07248568, 3.6366422, -0.00468712876, 9.14168083e-05, -0.198396455, 0.0173818421,
    9.91077679, 8.18729139, 11.9996986, 11.9995034, -1.11121823, 4.24328452, 0.00993418525, 0.00010720584,
    -0.0452092115, 0.0132144183, 9.92946655, 8.21703359, 11.9949908, 11.9900533, 0.0230265642, 3.76683515,
    -0.00260985189, 9.66408644e-05, 0.0152903474, 0.0145835272, 9.90708274, 8.18145535, 12.0012046,
    12.0024692, 0.199945721, 3.94431964, -0.00944555644, 9.79424884e-05, 0.0143301883, 0.0102621525,
    9.93503892, 8.22606921, 11.9959117, 11.9919586, 0.199801065, 0.113140863, -0.697412178, 1.08071913,
    -3.26481337, 2.22654253, -0.00494642349, 2.81049595e-05, -0.000440465989, 1.54197711e-07, 5.44495004,
    5.02185823, 6.00085878, 6.0017461,
]
LPPN_LOSSES = [1.793248, 1.653223]
# sha256 89bccd3a8583a378156105c4960b6016efce781ed93d7eddfffd3fa95fd6d97c on x86-64
DISTILL = [
    1.52127604, 2.78899424, -0.00382959377, 0.000102133226, 0.108735912, 0.00811462021, 6.68830693,
    5.59496574, 8.00651532, 8.01310665, -3.25983266, 2.91758028, -0.0167310839, 0.000147155243,
    -0.211545914, 0.0237131766, 6.73288155, 5.6685437, 7.9828406, 7.96582199, 0.799159965, 1.26279433,
    0.00307182153, 4.46793066e-05, 0.0558738681, 0.00333957798, 3.3132174, 2.7447141, 3.99570853,
    3.99146944, -0.0971838087, 1.79136598, -0.0011356069, 4.30743124e-06, -0.0103584841, 0.00228630366,
    3.37856275, 2.85423178, 4.0117029, 4.02344653, 1.30594681, 1.37767231, -0.00504960935, 3.78766511e-05,
    0.0892228102, 0.00818112245, 3.38367337, 2.8680793, 4.0034259, 4.00690517, -0.780542228, 2.76375641,
    0.0097630024, 7.14733716e-05, -0.0819555442, 0.012523087, 6.75543708, 5.70631805, 8.00890428,
    8.0179117, 1.31967709, 2.9983766, -0.000614910619, 9.68434152e-05, 0.0885592416, 0.00711482813,
    6.63865441, 5.5117845, 8.00591803, 8.0119754, -0.376469987, 2.46440646, 0.00890236208, 0.000102491303,
    -0.0302018705, 0.0058640838, 6.65217561, 5.53203667, 7.9982754, 7.99659634, -1.28340086, 2.38506051,
    -0.0112243005, 9.13238532e-05, -0.101018258, 0.011615849, 6.6768024, 5.57422727, 8.00569135,
    8.01146541, 0.604467123, 2.52169409, -0.00473072357, 0.000136723608, 0.0463173594, 0.00631988833,
    6.63660657, 5.50583376, 7.99060363, 7.98135286, 0.555900425, 0.185419584, -1.90334536, 0.91164356,
    0.47590044, 1.16594492, -0.00290923391, 4.27629358e-05, 1.88275008e-05, 3.36963652e-07, 3.34814125,
    2.8029007, 4.00091034, 4.00185483,
]
DISTILL_LOSSES = [3.378728, 3.317012]
