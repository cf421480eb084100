"""The words simulated players type: parts and colours in English and Italian (docs/method.md §2-§3).

:data:`PART_PHRASES` and :data:`COLOUR_PHRASES` give the words and phrases a player might type for
each part of the synthetic demo (:data:`inviz.data.synthetic.shapes.VOCABULARY`) and each colour
of its palette; :data:`IT_EN` is what a human translator would write for the Italian ones. The
closed loop of label analysis reads the English phrases to decide which part a label names
(:func:`inviz.labels.closed_loop.part_lexicon`). Plain data: no code of the generator or the
players is needed to read it.
"""

from __future__ import annotations

#: Part -> language -> words and phrases a player might type for it (English ``en``, Italian ``it``).
PART_PHRASES: dict[str, dict[str, list[str]]] = {
    "wheel": {
        "en": ["wheel", "wheels", "tyre", "tire", "spokes", "spoked wheel", "round wheel", "rim"],
        "it": ["ruota", "ruote", "pneumatico", "raggi", "cerchione", "ruota con i raggi"],
    },
    "stripes": {
        "en": ["stripes", "striped pattern", "lines", "zebra stripes", "parallel lines", "bands", "stripy"],
        "it": ["strisce", "righe", "a righe", "linee parallele", "strisce zebrate", "bande"],
    },
    "star": {
        "en": ["star", "stars", "five-pointed star", "star shape", "pointy star", "badge star"],
        "it": ["stella", "stelle", "stella a cinque punte", "forma di stella"],
    },
    "ring": {
        "en": ["ring", "circle", "hoop", "donut", "round outline", "annulus", "halo"],
        "it": ["anello", "cerchio", "ciambella", "cerchio vuoto", "aureola"],
    },
    "checker": {
        "en": ["checkerboard", "checkered pattern", "chessboard", "checks", "squares", "chequered flag"],
        "it": ["scacchiera", "a scacchi", "quadretti", "quadrati", "bandiera a scacchi"],
    },
    "dots": {
        "en": ["dots", "spots", "polka dots", "small circles", "pills", "bubbles", "dotted"],
        "it": ["puntini", "pallini", "pois", "cerchietti", "pillole", "bolle"],
    },
    "triangle": {
        "en": ["triangle", "triangular shape", "roof", "pyramid", "frame", "pointed top"],
        "it": ["triangolo", "forma triangolare", "tetto", "piramide", "telaio"],
    },
    "cross": {
        "en": ["cross", "plus sign", "plus", "medical cross", "red cross", "x shape"],
        "it": ["croce", "segno più", "più", "croce medica", "croce rossa"],
    },
    "zigzag": {
        "en": ["zigzag", "zig-zag line", "jagged line", "lightning", "wavy line", "tail", "battlements"],
        "it": ["zigzag", "linea a zigzag", "linea spezzata", "fulmine", "coda", "merli"],
    },
    "grid": {
        "en": ["grid", "windows", "lattice", "mesh", "grid pattern", "tiles", "grille"],
        "it": ["griglia", "finestre", "reticolo", "rete", "piastrelle", "grata"],
    },
    "crescent": {
        "en": ["crescent", "moon", "crescent moon", "half moon", "sickle", "banana shape"],
        "it": ["mezzaluna", "luna", "falce di luna", "spicchio di luna", "banana"],
    },
    "diamond": {
        "en": ["diamond", "rhombus", "lozenge", "diamond shape", "kite shape", "tilted square"],
        "it": ["rombo", "losanga", "diamante", "forma a rombo", "aquilone"],
    },
}

#: Colour name (keys of :data:`inviz.data.synthetic.DEFAULT_PALETTE`) -> language -> words a player
#: might type.
COLOUR_PHRASES: dict[str, dict[str, list[str]]] = {
    "red": {"en": ["red", "crimson"], "it": ["rosso", "rossa"]},
    "orange": {"en": ["orange"], "it": ["arancione", "arancio"]},
    "yellow": {"en": ["yellow", "golden"], "it": ["giallo", "gialla", "dorato"]},
    "green": {"en": ["green"], "it": ["verde"]},
    "cyan": {"en": ["cyan", "light blue", "turquoise"], "it": ["azzurro", "ciano", "turchese"]},
    "blue": {"en": ["blue", "dark blue"], "it": ["blu", "blu scuro"]},
    "purple": {"en": ["purple", "violet"], "it": ["viola"]},
    "pink": {"en": ["pink", "magenta"], "it": ["rosa", "fucsia"]},
    "white": {"en": ["white", "bright"], "it": ["bianco", "bianca", "chiaro"]},
    "black": {"en": ["black", "dark"], "it": ["nero", "nera", "scuro"]},
    "brown": {"en": ["brown"], "it": ["marrone"]},
}

#: Manual Italian -> English translations of the phrases in PART_PHRASES / COLOUR_PHRASES
#: (what a human translator would write); phrases missing here fall back to the part's first
#: English phrase.
IT_EN: dict[str, str] = {
    "ruota": "wheel",
    "ruote": "wheels",
    "pneumatico": "tyre",
    "raggi": "spokes",
    "cerchione": "rim",
    "ruota con i raggi": "wheel with spokes",
    "strisce": "stripes",
    "righe": "lines",
    "a righe": "striped",
    "linee parallele": "parallel lines",
    "strisce zebrate": "zebra stripes",
    "bande": "bands",
    "stella": "star",
    "stelle": "stars",
    "stella a cinque punte": "five-pointed star",
    "forma di stella": "star shape",
    "anello": "ring",
    "cerchio": "circle",
    "ciambella": "donut",
    "cerchio vuoto": "empty circle",
    "aureola": "halo",
    "scacchiera": "chessboard",
    "a scacchi": "checkered",
    "quadretti": "small squares",
    "quadrati": "squares",
    "bandiera a scacchi": "checkered flag",
    "puntini": "dots",
    "pallini": "polka dots",
    "pois": "polka dots",
    "cerchietti": "small circles",
    "pillole": "pills",
    "bolle": "bubbles",
    "triangolo": "triangle",
    "forma triangolare": "triangular shape",
    "tetto": "roof",
    "piramide": "pyramid",
    "telaio": "frame",
    "croce": "cross",
    "segno più": "plus sign",
    "più": "plus",
    "croce medica": "medical cross",
    "croce rossa": "red cross",
    "zigzag": "zigzag",
    "linea a zigzag": "zigzag line",
    "linea spezzata": "broken line",
    "fulmine": "lightning",
    "coda": "tail",
    "merli": "battlements",
    "griglia": "grid",
    "finestre": "windows",
    "reticolo": "lattice",
    "rete": "net",
    "piastrelle": "tiles",
    "grata": "grate",
    "mezzaluna": "half moon",
    "luna": "moon",
    "falce di luna": "crescent moon",
    "spicchio di luna": "sliver of moon",
    "banana": "banana",
    "rombo": "rhombus",
    "losanga": "lozenge",
    "diamante": "diamond",
    "forma a rombo": "diamond shape",
    "aquilone": "kite",
}

#: Vague texts players type when they cannot name what they saw.
VAGUE = {
    "en": ["shape", "colours", "no idea", "the shape", "pattern", "something", "lines and colours"],
    "it": ["forma", "colori", "non so", "qualcosa"],
}
#: Manual translations of the Italian vague texts.
IT_EN_VAGUE = {"forma": "shape", "colori": "colours", "non so": "i don't know", "qualcosa": "something"}
