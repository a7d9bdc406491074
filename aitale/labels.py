"""The labels a story carries, declared once: its age group, style and themes, and the safety categories.

Story front matter, params, the control tokens (``aitale.data.structure``), the classification
heads and story requests all take them from here.
"""

AGE_GROUPS = ("3-5", "6-8", "9-12")
STYLES = ("fairy_tale", "fable", "bedtime")
# Every theme a story may carry (the front matter of data/stories uses these words).
THEMES = (
    "kindness",
    "courage",
    "family",
    "friendship",
    "patience",
    "wisdom",
    "nature",
    "generosity",
    "responsibility",
    "humility",
    "honesty",
    "gratitude",
    "cooperation",
    "perseverance",
    "sharing",
    "forgiveness",
    "curiosity",
)
# What the content screen (aitale.safety) judges a passage on; data/safety/passages.jsonl is labelled with these.
SAFETY_CATEGORIES = ("violence", "sexual", "substances", "profanity_slurs", "self_harm", "frightening")
