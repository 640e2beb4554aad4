"""The multimodal model: backbones, visual neck, modality token and adapters."""
