"""`toolgym serve --model PATH`: an OpenAI-compatible HTTP server over the transformers engine.

So that a local checkpoint is evaluated through the same client as an API model
(`toolgym eval --model openai:NAME@http://127.0.0.1:PORT/v1`). Binds to 127.0.0.1 by default; there
is no authentication, so do not bind it to a public interface.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--model", required=True,
                        help="run directory, RUN_DIR/checkpoints/step_N or a save_pretrained folder")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--name", default=None, help="model name reported by /v1/models (default: the path)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def run(args: argparse.Namespace) -> int:
    from toolgym.commands._trained import resolve_model, trained_env

    try:
        model_dir, config = resolve_model(args.model)
        trained = trained_env(config) if config is not None else None
    except (FileNotFoundError, ValueError, LookupError) as exc:
        print(f"toolgym serve: {exc}", file=sys.stderr)
        return 2
    import torch
    from toolgym.agents.hf_engine import HFEngine
    from toolgym.agents.server import make_server

    if args.threads:
        torch.set_num_threads(args.threads)
    engine = HFEngine.from_pretrained(str(model_dir), device=args.device, dtype=args.dtype,
                                      max_batch_size=args.max_batch_size)
    name = args.name or str(args.model)
    server = make_server(engine, engine.tokenizer, model_name=name, host=args.host, port=args.port)
    host, port = server.server_address[:2]
    # The first line on stdout is machine-readable: tests and scripts wait for it to learn the port.
    print(f"toolgym serve: listening on http://{host}:{port}/v1 model={name}", flush=True)
    print(f"  serving {model_dir}")
    if trained is not None:  # a served model is evaluated in its training environment only if asked to
        print("  " + trained.describe().replace("--no-train-env", "omit --env-from"))
        print(f"  evaluate it as trained: toolgym eval --model openai:{name}@http://{host}:{port}/v1 "
              f"--env-from {trained.config_path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.RequestHandlerClass.app.batcher.close()
    return 0
