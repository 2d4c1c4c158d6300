"""sb3_pdm: Stable-Baselines3 policies whose hidden layers learn by local Pairwise Distance Matching (PDM)."""

import os

from sb3_pdm.callbacks import PDMCallback
from sb3_pdm.config import PDMConfig
from sb3_pdm.extractors import PDMCombinedExtractor, PDMFeaturesExtractor, PDMMlpFeaturesExtractor, PDMNatureCNN
from sb3_pdm.guidance import PDMDictRolloutBuffer, PDMRolloutBuffer
from sb3_pdm.heads import NormalizedValueHead
from sb3_pdm.layers import PDMConv2d, PDMLayer, PDMLinear
from sb3_pdm.policies import CnnPDMPolicy, MultiInputPDMPolicy, PDMPolicy
from sb3_pdm.trunks import PDMMlpExtractor

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = [
    "CnnPDMPolicy",
    "MultiInputPDMPolicy",
    "NormalizedValueHead",
    "PDMCallback",
    "PDMCombinedExtractor",
    "PDMConfig",
    "PDMConv2d",
    "PDMDictRolloutBuffer",
    "PDMFeaturesExtractor",
    "PDMLayer",
    "PDMLinear",
    "PDMMlpExtractor",
    "PDMMlpFeaturesExtractor",
    "PDMNatureCNN",
    "PDMPolicy",
    "PDMRolloutBuffer",
]
