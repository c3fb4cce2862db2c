"""Data layer: DP-layout replay buffers, padded training windows, and normalizers that travel with the weights."""

from .normalizer import MinMaxNormalizer
from .replay_buffer import DatasetError, ReplayBuffer
from .sampler import SequenceSampler, split_episodes

__all__ = ["DatasetError", "MinMaxNormalizer", "ReplayBuffer", "SequenceSampler", "split_episodes"]
