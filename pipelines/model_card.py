"""Write MODEL_CARD.md for a bundle from its bundle.json: data, config, epochs, wall-clock, validation scores.

    .venv/bin/python pipelines/model_card.py weights/default --command "pianocomposer train ..."
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pianocomposer.config import ModelConfig
from pianocomposer.encodings import get_encoding
from pianocomposer.learning.bundle import load_bundle, read_meta
from pianocomposer.learning.dataset import make_windows
from pianocomposer.learning.model import build_model
from pianocomposer.learning.train import compile_model
from pianocomposer.reading.tokens import load_tokens
from pianocomposer.writing.atomic import write_text


def stored_weights_scores(folder: Path, data: Path) -> dict:
    """Validation loss and accuracy of the shipped (maybe float16) weights, run in float32 as generation runs them."""
    bundle = load_bundle(folder)
    config = ModelConfig.from_dict(bundle.meta["config"])
    model = build_model(config, len(bundle.vocabulary))
    model.set_weights([w.astype("float32") for w in bundle.model.get_weights()])
    compile_model(model, config)
    songs = {s.source: s.tokens for s in load_tokens(data).songs}
    x, y, w = make_windows([bundle.vocabulary.encode(songs[n]) for n in bundle.meta["split"]["val"]],
                           config.seq_len, multiple_of=config.batch_size)
    return model.evaluate(x, y, sample_weight=w, batch_size=config.batch_size, verbose=0, return_dict=True)


CHORALES = "It knows four-part Bach chorale harmony and nothing else; "
# shipped bundle -> (how generate picks it, what the model cannot do); what its tokens are is the encoding's own
SHIPPED = {
    "default": ("`pianocomposer generate` uses it when you have not trained a model of your own.",
                CHORALES + "it has no rhythm (every token lasts the same time, as in the original encoding) and chord "
                "octaves are lost by the encoding."),
    "base": ("`pianocomposer generate --weights base` uses it; `pianocomposer extract --like base` and `pianocomposer "
             "train --from base` fine-tune it on your own folder.",
             "It learned from Renaissance and medieval polyphony, folk dance tunes and a few Romantic pieces "
             "(base_songs/MANIFEST.json), never from the Viennese classics it is judged on nor from Bach's chorales; "
             "its grid is the sixteenth and the eighth-note triplet; dynamics, tempo changes and instruments are "
             "not modelled."),
    "timed": ("`pianocomposer generate --weights timed` uses it.", CHORALES + "its grid is the sixteenth and the "
              "eighth-note triplet; dynamics (velocity), tempo changes and instruments are not modelled."),
    "abc": ("`pianocomposer generate --weights abc` uses it: each tune starts from `X:1` (or `--primer-text`) and "
            "ends with the end-of-tune token, and the metre-aware sampler keeps every bar the metre's length "
            "(pickups as abc2midi plays them).",
            "It knows the folk tunes of the books it read (Irish, Scottish, American, German and Chinese) and "
            "nothing else; its titles are invented word-like strings, and a tune may still fail a check that is not "
            "about bars (generate checks each with music21 and says why)."),
    "chorale": ("`pianocomposer harmonize MELODY` uses it: the melody is the soprano at every frame and the model "
                "writes the bass, then alto and tenor (its encoding's order); `pianocomposer generate --weights "
                "chorale` writes whole chorales.",
                CHORALES + "it was trained without transposition, so keys the chorales do not use are new to it, and "
                "its sixteenth grid moves shorter notes."),
}


def model_card(folder: Path, command: str, data_note: str, data: Path) -> str:
    """The card's Markdown text."""
    meta = read_meta(folder)
    training = meta["training"]
    history = training["history"]
    best = next(h for h in history if h["epoch"] == training["best_epoch"])
    layers, units, cell = (meta["config"][k] for k in ("rnn_layers", "rnn_units", "cell"))
    config = "\n".join(f"| `{k}` | {v} |" for k, v in meta["config"].items())
    options = ", ".join(f"{k}={v}" for k, v in training["options"].items())
    hours = sum(h["seconds"] for h in history) / 3600
    stored = stored_weights_scores(folder, data)
    size_mb = sum(f.stat().st_size for f in folder.iterdir() if f.name != "last.keras") / 1e6
    tokens_are = get_encoding(meta["encoding"], meta.get("encoding_params")).description
    used_by, limits = SHIPPED.get(folder.name, (f"`pianocomposer generate --weights {folder}` uses it.", ""))
    params = f", parameters `{meta['encoding_params']}`" if meta.get("encoding_params") else ""
    base = meta.get("base")
    if base:  # a fine-tune (train --from) names what it started from
        used_by += (f" Fine-tuned from the bundle `{base['bundle']}` ({base['epochs']} epochs, validation loss "
                    f"{base['best_val_loss']:.4f} on its own corpus).")
    return f"""# Model card: `{folder.name}`

**What it is.** A {layers}-layer {units}-unit {cell.upper()} next-token model
(`{meta['encoding']}` encoding: {tokens_are}{params}), trained with pianocomposer's own
`train` command. {used_by}

**Data.** {data_note} {len(meta['split']['train'])} training songs, {len(meta['split']['val'])} validation songs
(whole songs held out). Vocabulary: {len(meta['vocabulary'])} tokens.

**Command.**

```
{command}
```

**Training.** {training['epochs']} epochs ({hours:.2f} h of training time on the machine below; Keras
{meta['keras']}, backend `{meta['backend']}`), options: {options}. Best epoch: {training['best_epoch']}.

| metric (best epoch) | value |
| --- | --- |
| validation loss (nats/token) | {best['val_loss']:.4f} |
| validation perplexity | {math.exp(best['val_loss']):.2f} |
| validation next-token accuracy | {best['val_accuracy']:.2%} |
| training loss | {best['loss']:.4f} |

Stored weights: `{meta['weights_dtype']}`; evaluated as shipped (in float32, as generation runs them) on the
same validation windows they score loss {stored['loss']:.4f} and accuracy {stored['accuracy']:.2%}.
The bundle is {size_mb:.1f} MB without `last.keras` (not shipped).
The loss curve is `loss.png`, every epoch is in `history.csv`.

**Configuration.**

| field | value |
| --- | --- |
{config}

**Limits.** {limits or "Those of its data: see the Data paragraph."}
"""


def main() -> None:
    """Write the card into the bundle folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--command", required=True, help="the command that trained the bundle")
    parser.add_argument("--machine", default="", help="where it was trained")
    parser.add_argument("--results", default="", help="a paragraph of further measured results (Markdown)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="tokens.json the bundle was trained on")
    parser.add_argument("--data-note", default="`midi_songs/`: 350 Bach chorales from music21's public-domain corpus "
                        "(see midi_songs/PROVENANCE.md).")
    args = parser.parse_args()
    text = model_card(args.folder, args.command, args.data_note, args.data)
    if args.machine:
        text += f"\n**Machine.** {args.machine}\n"
    if args.results:
        text += f"\n**Measured.** {args.results}\n"
    write_text(args.folder / "MODEL_CARD.md", text)


if __name__ == "__main__":
    main()
