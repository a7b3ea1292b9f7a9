"""The commands that use models: translate, caption, test, evaluate, score, plot, serve, chat."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from transduce.cli.common import (DECODING, DEVICE, ENSEMBLE, LOAD, MODEL_DIR, POSITIVE,
                                  QUANTIZE, arg, command, decode_options, decoding, load_model,
                                  nothing_to_score, number, print_scores, read_input,
                                  write_output)
from transduce.errors import TransduceError
from transduce.evaluate import METRICS

log = logging.getLogger("transduce")



@command("translate", "decode stdin (or -i FILE), one output line per line", ENSEMBLE,
         arg("-i", "--input", help="the input file (default: stdin)"),
         arg("-o", "--output", help="the output file (default: stdout)"),
         decoding("--n-best", "outputs per input, best first, tab-separated with their scores",
                  type=POSITIVE),
         arg("--prefix", help="every output starts with this target text, then goes on freely"),
         arg("--constraints", action="store_true",
             help="each input line is SOURCE<TAB>PHRASE<TAB>...: its output contains every "
                  "PHRASE (terminology)"),
         *DECODING)
def cmd_translate(args: argparse.Namespace) -> int | None:
    """example: transduce translate runs/es-en -i test.es -o out.en --beam-size 5"""
    model = load_model(args)
    lines, constraints = read_input(args.input), None
    if args.constraints:  # SOURCE<TAB>PHRASE<TAB>PHRASE...
        columns = [line.split("\t") for line in lines]
        lines = [c[0] for c in columns]
        constraints = [[p for p in c[1:] if p.strip()] for c in columns]
    lines = image_paths(model, lines, args.input)
    options = decode_options(args)
    n_best = model.config.decoding.override(**options).n_best
    out = []
    for res in model.search(lines, prefix=args.prefix, constraints=constraints, **options):
        if n_best > 1:
            res = res + [None] * (n_best - len(res))
            out.extend(f"{r.text}\t{r.score:.4f}" if r else "\t0.0000" for r in res)
        else:
            out.append(res[0].text if res else "")
    write_output(out, args.output)


def image_paths(model, lines: list[str], list_file: str | None) -> list[str]:
    """An image model's input lines are image paths relative to their list file (from stdin:
    to the current directory); a text model's stay as they are."""
    from transduce.data.corpus import relative_to

    return relative_to(lines, list_file) if model.model.images and list_file not in (None, "-") \
        else lines


@command("caption", "print one caption per image, in order (a model trained on images)",
         MODEL_DIR,
         arg("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, WebP, ...)"),
         *DECODING)
def cmd_caption(args: argparse.Namespace) -> int | None:
    """example: transduce caption runs/emoji-captions photo.png sketch.png"""
    model = load_model(args)
    if not model.model.images:
        raise TransduceError(f"{args.model_dir}: this model reads text (data.src_type: text), "
                             "not images; use transduce translate")
    write_output(model.translate(args.images, **decode_options(args)), None)


REFS = arg("--ref", required=True, nargs="+", metavar="REF",
           help="reference file; several for several references per line (an empty line of "
                "a further file: no reference there)")


@command("evaluate", "score hypotheses against references",
         arg("--hyp", required=True, help="the hypotheses, one per line"), REFS,
         arg("--metrics", default="bleu,chrf,rouge",
             help=f"comma-separated, of {', '.join(METRICS)}"),
         arg("--json", action="store_true", help="one JSON object instead of a table"))
def cmd_evaluate(args: argparse.Namespace) -> int | None:
    """example: transduce evaluate --hyp out.en --ref test.en --metrics bleu,chrf,rouge"""
    from transduce.data.corpus import read_lines
    from transduce.evaluate import read_references

    hyps, refs = read_lines(args.hyp), read_references(args.ref)
    if len(hyps) != len(refs):
        raise TransduceError(f"{args.hyp}: {len(hyps)} lines but {args.ref[0]} has {len(refs)}; "
                             "hypotheses and references must be line-aligned")
    nothing_to_score(refs, args.hyp, args.ref[0])
    print_scores(hyps, refs, args)


@command("test", "translate a test set and score it", ENSEMBLE,
         arg("--src", required=True, help="the test sources, one per line"), REFS,
         arg("-o", "--output", help="also write the translations here"),
         arg("--metrics", help="default: bleu,chrf (an image model: bleu,chrf,cider)"),
         arg("--json", action="store_true", help="one JSON object instead of a table"),
         *DECODING)
def cmd_test(args: argparse.Namespace) -> int | None:
    """example: transduce test runs/es-en --src test.es --ref test.en"""
    from transduce.data.corpus import read_parallel
    from transduce.evaluate import read_references

    src, _ = read_parallel(args.src, args.ref[0])
    refs = read_references(args.ref)
    nothing_to_score(refs, args.src, args.ref[0])
    model = load_model(args)
    hyps = model.translate(image_paths(model, src, args.src), **decode_options(args))
    if args.output:
        write_output(hyps, args.output)
    args.metrics = args.metrics or ("bleu,chrf,cider" if model.model.images else "bleu,chrf")
    print_scores(hyps, refs, args)


@command("score", "forced decoding: each reference's log-probability given its source, and "
         "that per token (tab-separated, one line per pair)", MODEL_DIR,
         arg("--src", required=True, help="the sources, one per line"),
         arg("--ref", required=True, help="the targets to score, line-aligned with --src"),
         arg("-o", "--output", help="default: stdout"), *LOAD)
def cmd_score(args: argparse.Namespace) -> int | None:
    """example: transduce score runs/es-en --src test.es --ref test.en -o scores.tsv"""
    from transduce.data.corpus import read_parallel

    src, refs = read_parallel(args.src, args.ref)
    model = load_model(args)
    write_output([f"{lp:.4f}\t{per_token:.4f}" for lp, per_token in model.score(src, refs)],
                  args.output)


@command("plot", "attention heatmap of one input (an image model: the image under each word's "
         "attention)", MODEL_DIR, arg("text", help="the input (an image model: its path)"),
         arg("-o", "--output", default="attention.png", help="an image file (png, pdf, svg, ...)"),
         DECODING[0], *LOAD)
def cmd_plot(args: argparse.Namespace) -> int | None:
    """example: transduce plot runs/es-en "hola mundo" -o attention.png"""
    from matplotlib.backend_bases import FigureCanvasBase

    out, formats = Path(args.output), FigureCanvasBase.get_supported_filetypes()
    if out.suffix and out.suffix[1:].lower() not in formats:
        raise TransduceError(f"{out}: unknown image format {out.suffix!r}; use one of "
                             + ", ".join("." + f for f in sorted(formats)))
    if not out.parent.is_dir():
        raise TransduceError(f"{out}: cannot write the plot (no directory {out.parent}); check "
                             "the path")
    model = load_model(args)
    from transduce.plot import plot_attention
    if model.config.model.attention == "none":
        raise TransduceError(f"{args.model_dir}: the model has no attention to plot "
                             "(model.attention: none)")
    if not args.text.strip():
        raise TransduceError("the text to plot is empty")
    res = model.search([args.text], beam_size=args.beam_size, attention=True)[0][0]
    try:
        if model.model.images:  # Show, Attend and Tell's figure
            from transduce.data.images import load_image
            from transduce.plot import image_attention_figure, save_figure

            image = load_image(args.text, model.config.data.image_size).transpose(1, 2, 0)
            save_figure(image_attention_figure(image, res.attention, res.tgt_tokens,
                                               res.text[:80]), out)
        else:
            plot_attention(res.attention, res.src_tokens, res.tgt_tokens, out,
                           title=res.text[:80], copy=res.copy)
    except OSError as e:
        raise TransduceError(f"{out}: cannot write the plot ({e.strerror}); check the path and "
                             "its permissions") from None
    print(res.text)
    log.info("attention plot written to %s", args.output)


@command("serve", "HTTP API and web page with attention heatmaps", ENSEMBLE,
         arg("--host", default="127.0.0.1", help="the address to listen on (default: this machine "
             "only; any other needs a token, or warns)"),
         arg("--port", type=number(int, 1, 65535), default=8000, help="the TCP port"), DEVICE,
         QUANTIZE,
         arg("--threads", type=POSITIVE, help="torch threads"),
         arg("--max-batch-size", type=POSITIVE, default=64,
             help="sentences decoded together across concurrent requests"),
         arg("--max-wait-ms", type=number(float, 0, 60_000), default=5.0,
             help="how long a request may wait for others to batch with"),
         arg("--no-batching", action="store_true", help="decode each request alone"),
         arg("--max-inputs", type=POSITIVE, default=32, help="inputs per request"),
         arg("--max-chars", type=POSITIVE, default=1000, help="characters per input"),
         arg("--allow-host", action="append", default=[], metavar="NAME",
             help="a name clients reach the server by (their Host header), besides its --host, "
                  "localhost and IP addresses; repeatable; '*': any"),
         arg("--token", help="require 'Authorization: Bearer TOKEN' (default: $TRANSDUCE_TOKEN; "
                             "the environment keeps it out of the process list)"))
def cmd_serve(args: argparse.Namespace) -> int | None:
    """example: transduce serve runs/es-en --port 8000   (several model_dirs: an ensemble)"""
    from transduce.serve.app import serve

    dirs = args.model_dir
    serve(dirs[0] if len(dirs) == 1 else dirs, host=args.host, port=args.port, device=args.device,
          quantize=args.quantize, threads=args.threads, max_batch_size=args.max_batch_size,
          max_wait_ms=args.max_wait_ms, batching=not args.no_batching,
          max_inputs=args.max_inputs, max_chars=args.max_chars, allow_hosts=args.allow_host,
          token=args.token)


@command("chat", "reply to each input line (interactive or piped)", MODEL_DIR,
         *DECODING)
def cmd_chat(args: argparse.Namespace) -> int | None:
    """Read a message per line (a terminal prompt, or piped input), print a reply per line.

    example: transduce chat runs/dialogue
    """
    model = load_model(args)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        reply = model.translate([line.strip()], **decode_options(args))[0] if line.strip() else ""
        print(reply, flush=True)
