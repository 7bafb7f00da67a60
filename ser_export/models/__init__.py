"""The two ``VoiceEmotionCnn`` variants, by name."""
from .voice_emotion_cnn import ARCHITECTURES, Architecture, VoiceEmotionCnn

__all__ = ["ARCHITECTURES", "Architecture", "VoiceEmotionCnn"]
