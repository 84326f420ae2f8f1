"""SENN: Self-Expanding Neural Networks (Mitchell, Menzenbach, Kersting, Mundt; arXiv 2307.04526).

The ``senn`` trigger grows where a new unit would most raise the natural expansion score
(``senn_score``); the ``senn`` initializer gives the new unit the fan-in the trigger chose
and a zero fan-out, so growth preserves the function.

**Sites.** A width site ``s`` (Linear producer -> optional BatchNorm -> activation -> Linear
consumer) is scored on its *consumer*: a new unit of ``s`` is a new input of the consumer
with zero fan-out. ``eta_l`` is the consumer's K-FAC score; a width candidate is a fan-in
``u`` over ``[x_{l-1}, 1]`` (the producer's input plus a bias entry) with activations
``a_p = act(u . [x, 1] / sqrt(1 + bn_eps))`` (the division only at BatchNorm sites: the new
unit's BatchNorm entries are fresh and identity-like, gamma 1, beta 0, running mean 0 and
running var 1, so in eval mode it divides by ``sqrt(1 + eps)``; in train mode the batch
statistics rescale the newborn, which the score ignores). Conv sites (and conv -> Linear
through a flatten) are not scored: the trigger skips them and the initializer gives them a
random fan-in with zero fan-out, as ``random`` does.

**Depth.** A depth proposal at ``s`` inserts, between ``s`` and its consumer, a layer with
identity weights and the rational activation (identity at init; ``net2deeper`` with
``activation: rational``). At init its linear part only reaches directions the consumer
already has (``W_c dV``), so its potential gain is what a *nonlinear* unit reading the
site's output could add: its ``d_eta'`` is the best candidate over ``[h_s, 1]`` (``h_s`` the
consumer's input) with the site's activation, on the same consumer statistics. It is divided
by ``layer_cost`` before the tau/alpha tests, and after an accepted depth proposal the
trigger proposes no depth for ``layer_cooldown`` checks. (Our reading of the reference's
layer proposals; documented, not verified against the paper's text.)
"""

from growray.growth._senn_initializer import SENNInitializer
from growray.growth._senn_site import SiteData, measure_site, senn_supported
from growray.growth._senn_trigger import SENNTrigger

__all__ = ["SENNInitializer", "SENNTrigger", "SiteData", "measure_site", "senn_supported"]
