"""Fisher forgetting's noise scale: searched on held-out retained data, or given."""

import torch

from unsir_core.baselines import FISHER_ALPHAS, FisherConfig
from unsir_core.methods import method_config, unlearn
from unsir_core.metrics import accuracy_report

CPU = torch.device("cpu")


def test_the_search_picks_the_largest_alpha_that_keeps_held_out_accuracy(digits, trained_digits_model):
    assert method_config("fisher", "cifar10", "resnet18").alpha == 0  # searched unless given
    cfg = FisherConfig(samples=200, holdout=300, tolerance=0.02)
    result = unlearn("fisher", trained_digits_model, "resnet18", digits, (3,), CPU, cfg, seed=0)
    tried = {h["alpha"]: h["held_out_accuracy"] for h in result.history if "alpha" in h}
    chosen = result.history[-1]["chosen_alpha"]
    floor = result.history[-1]["floor"]
    assert floor == tried[0.0] - 0.02  # judged against the model without noise
    assert chosen in FISHER_ALPHAS and tried[chosen] >= floor
    assert all(acc < floor for a, acc in tried.items() if a > chosen)  # every larger alpha tried failed
    assert len(tried) <= 1 + 6  # a bisection, not a scan of all 17
    # the result is the chosen alpha's model: given that alpha, the same draw gives the same model
    again = unlearn(
        "fisher", trained_digits_model, "resnet18", digits, (3,), CPU, FisherConfig(200, chosen, holdout=300)
    )
    assert again.history == []  # no search when alpha is given
    for a, b in zip(result.model.parameters(), again.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    acc = accuracy_report(result.model, digits, [3], CPU)
    assert acc["forget_acc"] < 0.2  # the forget rows are reset
    # a tolerance of 1 accepts any noise: the largest alpha of the grid
    loose = unlearn("fisher", trained_digits_model, "resnet18", digits, (3,), CPU, FisherConfig(200, tolerance=1.0))
    assert loose.history[-1]["chosen_alpha"] == FISHER_ALPHAS[0]
