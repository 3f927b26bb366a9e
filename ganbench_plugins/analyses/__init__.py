"""The DCGAN paper's analyses (Sections 4.1 and 6) as ganbench analysis plugins.

Registered through the ``ganbench`` entry-point group like any third-party plugin; each
module holds one analysis and uses only the core's interfaces (``AnalysisContext``,
``GanModel.generator_layers``/``discriminator_layers``).
"""

from __future__ import annotations

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Analysis
from ganbench.plugins.registry import Registrar


@hookimpl
def ganbench_register_analyses(registry: Registrar[Analysis]) -> None:
    from ganbench_plugins.analyses.forgetting import Forgetting
    from ganbench_plugins.analyses.guided import GuidedBackprop
    from ganbench_plugins.analyses.latent import Arithmetic, Samples, Walk
    from ganbench_plugins.analyses.memorisation import Memorisation

    for analysis in (
        Samples(),
        Walk(),
        Arithmetic(),
        GuidedBackprop(),
        Forgetting(),
        Memorisation(),
    ):
        registry.add(analysis)
