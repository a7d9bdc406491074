"""A small part-of-speech-tagged synonym table for paraphrase, written for this project's stories.

Keys are ``(base form, part of speech)`` with lemminflect's universal tags (``VERB``, ``NOUN``,
``ADJ``, ``ADV``); values are base forms that can stand in the key's place in a children's story
whatever its inflection (``aitale.data.augment`` inflects them like the word they replace).
Each pair was chosen to keep both the meaning and the grammar of the sentence: verbs keep their
transitivity ("grab" -> "seize", never "walk" -> "go"), nouns their countability ("path" -> "trail"),
and words with a second everyday sense are left out ("home" in "went home", "little" in "a little
tired", "old" in "three years old", "wood" the material, "said").
"""

from __future__ import annotations

SYNONYMS: dict[tuple[str, str], tuple[str, ...]] = {
    # verbs
    ("begin", "VERB"): ("start",),
    ("shout", "VERB"): ("yell", "call out"),
    ("yell", "VERB"): ("shout",),
    ("hurry", "VERB"): ("rush",),
    ("rush", "VERB"): ("hurry",),
    ("whisper", "VERB"): ("murmur",),
    ("murmur", "VERB"): ("whisper",),
    ("gaze", "VERB"): ("stare",),
    ("stare", "VERB"): ("gaze",),
    ("glance", "VERB"): ("peek",),
    ("peek", "VERB"): ("peep",),
    ("smile", "VERB"): ("grin", "beam"),
    ("laugh", "VERB"): ("giggle", "chuckle"),
    ("giggle", "VERB"): ("laugh",),
    ("shine", "VERB"): ("glow", "gleam"),
    ("glow", "VERB"): ("shine",),
    ("reply", "VERB"): ("answer",),
    ("grab", "VERB"): ("seize",),
    ("wander", "VERB"): ("roam",),
    ("stroll", "VERB"): ("amble",),
    ("walk", "VERB"): ("stroll",),
    ("weep", "VERB"): ("sob",),
    ("sob", "VERB"): ("weep",),
    ("shiver", "VERB"): ("tremble",),
    ("tremble", "VERB"): ("shiver",),
    ("vanish", "VERB"): ("disappear",),
    ("disappear", "VERB"): ("vanish",),
    ("stumble", "VERB"): ("trip",),
    ("leap", "VERB"): ("jump",),
    ("jump", "VERB"): ("leap",),
    ("hop", "VERB"): ("bounce",),
    ("nibble", "VERB"): ("munch",),
    ("munch", "VERB"): ("nibble",),
    ("sparkle", "VERB"): ("twinkle", "glitter"),
    ("twinkle", "VERB"): ("sparkle",),
    ("tumble", "VERB"): ("topple",),
    ("scurry", "VERB"): ("scamper",),
    ("scamper", "VERB"): ("scurry",),
    ("snuggle", "VERB"): ("nestle",),
    ("nestle", "VERB"): ("snuggle",),
    ("wriggle", "VERB"): ("wiggle",),
    ("wiggle", "VERB"): ("wriggle",),
    # nouns
    ("smile", "NOUN"): ("grin",),
    ("laugh", "NOUN"): ("chuckle",),
    ("forest", "NOUN"): ("wood",),
    ("path", "NOUN"): ("trail",),
    ("rock", "NOUN"): ("stone",),
    ("stone", "NOUN"): ("rock",),
    ("gift", "NOUN"): ("present",),
    ("journey", "NOUN"): ("trip",),
    ("supper", "NOUN"): ("dinner",),
    ("lantern", "NOUN"): ("lamp",),
    ("tale", "NOUN"): ("story",),
    ("reply", "NOUN"): ("answer",),
    ("shore", "NOUN"): ("beach",),
    ("whisper", "NOUN"): ("murmur",),
    ("shout", "NOUN"): ("yell",),
    ("giggle", "NOUN"): ("laugh",),
    ("grin", "NOUN"): ("smile",),
    ("glow", "NOUN"): ("shine",),
    ("sack", "NOUN"): ("bag",),
    ("pond", "NOUN"): ("pool",),
    # adjectives
    ("big", "ADJ"): ("large",),
    ("large", "ADJ"): ("big",),
    ("huge", "ADJ"): ("enormous",),
    ("enormous", "ADJ"): ("huge",),
    ("beautiful", "ADJ"): ("lovely",),
    ("lovely", "ADJ"): ("beautiful",),
    ("brave", "ADJ"): ("bold", "courageous"),
    ("sad", "ADJ"): ("unhappy",),
    ("unhappy", "ADJ"): ("sad",),
    ("tired", "ADJ"): ("weary", "sleepy"),
    ("sleepy", "ADJ"): ("drowsy",),
    ("angry", "ADJ"): ("cross",),
    ("glad", "ADJ"): ("happy",),
    ("strange", "ADJ"): ("odd",),
    ("odd", "ADJ"): ("strange",),
    ("clever", "ADJ"): ("smart",),
    ("quick", "ADJ"): ("swift",),
    ("shiny", "ADJ"): ("gleaming",),
    ("cosy", "ADJ"): ("snug",),
    ("cozy", "ADJ"): ("snug",),
    ("snug", "ADJ"): ("cosy",),
    ("grumpy", "ADJ"): ("cross",),
    ("silly", "ADJ"): ("foolish",),
    ("wet", "ADJ"): ("damp",),
    # adverbs
    ("quickly", "ADV"): ("swiftly",),
    ("swiftly", "ADV"): ("quickly",),
    ("softly", "ADV"): ("gently", "quietly"),
    ("gently", "ADV"): ("softly",),
    ("quietly", "ADV"): ("softly",),
    ("suddenly", "ADV"): ("all at once",),
    ("almost", "ADV"): ("nearly",),
    ("nearly", "ADV"): ("almost",),
    ("perhaps", "ADV"): ("maybe",),
    ("maybe", "ADV"): ("perhaps",),
    ("happily", "ADV"): ("gladly", "cheerfully"),
}

# Synonyms that take no direct object: a verb swapped for one of them must not be followed by one
# ("walked home" -> "strolled home", but never "walked the dog" -> "strolled the dog").
INTRANSITIVE = frozenset(
    "stroll amble roam giggle chuckle laugh grin beam sob weep tremble shiver vanish disappear glow gleam shine "
    "twinkle sparkle glitter topple scamper scurry nestle snuggle trip peek peep stare gaze rush hurry jump leap "
    "bounce wriggle wiggle murmur whisper yell shout".split()
)
