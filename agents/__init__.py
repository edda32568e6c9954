"""toolgym.agents: inference engines, chat rendering, token-faithful rollouts, agents and evaluation.

Imports only `toolgym.envs`. Names are exported lazily: `import toolgym.agents` does not import torch.
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # engines
    "SamplingParams": "toolgym.agents.engine",
    "Generation": "toolgym.agents.engine",
    "Engine": "toolgym.agents.engine",
    "ChatEngine": "toolgym.agents.engine",
    "HFEngine": "toolgym.agents.hf_engine",
    "VLLMEngine": "toolgym.agents.vllm_engine",
    "OpenAIEngine": "toolgym.agents.openai_engine",
    "parse_model_spec": "toolgym.agents.openai_engine",
    "make_server": "toolgym.agents.server",
    # tiny model
    "build_tiny_model": "toolgym.agents.tiny",
    "cached_tiny_model": "toolgym.agents.tiny",
    # chat rendering
    "ChatRenderer": "toolgym.agents.chat",
    "Conversation": "toolgym.agents.chat",
    "TemplateCheck": "toolgym.agents.chat",
    "TemplateError": "toolgym.agents.chat",
    "check_chat_template": "toolgym.agents.chat",
    "PrefixCache": "toolgym.agents.prefix_cache",
    # episodes and rollouts
    "Episode": "toolgym.agents.episode",
    "read_jsonl": "toolgym.agents.episode",
    "write_jsonl": "toolgym.agents.episode",
    "RolloutRunner": "toolgym.agents.rollout",
    "as_agent": "toolgym.agents.rollout",
    # agents
    "Agent": "toolgym.agents.policies",
    "TurnState": "toolgym.agents.policies",
    "EngineAgent": "toolgym.agents.policies",
    "ChatAgent": "toolgym.agents.policies",
    "TeacherAgent": "toolgym.agents.policies",
    "RandomAgent": "toolgym.agents.policies",
    # evaluation
    "evaluate": "toolgym.agents.evaluate",
    "pass_at_k": "toolgym.agents.evaluate",
    "summarize": "toolgym.agents.evaluate",
    "resolve_tasks": "toolgym.agents.evaluate",
    "markdown_table": "toolgym.agents.evaluate",
    "write_report": "toolgym.agents.evaluate",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
