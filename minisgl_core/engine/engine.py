"""The engine of one process (one TP rank): model, KV memory, attention backends, sampler, and running
one :class:`StepPlan` at a time on the device."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from minisgl_core.config import EngineConfig
from minisgl_core.contracts.attention import AttentionBackend, AttentionContext
from minisgl_core.contracts.batch import ForwardBatch, Phase
from minisgl_core.contracts.model import ModelContext, TPInfo
from minisgl_core.contracts.model_config import ModelConfig
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.engine.cuda_graph import CudaGraphRunner
from minisgl_core.engine.model_loader import build_model, resolve_dtype
from minisgl_core.engine.piecewise_graph import PiecewiseGraphRunner
from minisgl_core.engine.plan import StepPlan
from minisgl_core.engine.prompt_logprobs import PromptLogprobs, prompt_positions, score
from minisgl_core.engine.sampler import PenaltyState, Sampler, SamplingBatch
from minisgl_core.engine.step_output import StepOutput
from minisgl_core.kv import KVPool, PageTable, kv_pages
from minisgl_core.parallel import broadcast_object, broadcast_tensor, get_tp, resolve_device, set_tp
from minisgl_core.plugins import ATTENTION, build, resolve_attention

logger = logging.getLogger("minisgl.engine")


class Engine:
    """Owns everything that lives on the device for one engine process."""

    def __init__(self, config: EngineConfig, model_dir: Path, model_config: ModelConfig, tp: TPInfo) -> None:
        set_tp(tp)
        self.config = config
        self.model_config = model_config
        self.device = resolve_device(config.device, tp)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.dtype = resolve_dtype(config.dtype, model_config.dtype, self.device)
        self.max_model_len = config.max_model_len or model_config.max_position_embeddings
        self.model = build_model(
            ModelContext(model_config, self.dtype, self.device, tp, self.max_model_len),
            model_dir,
            config.load_format,
            config.seed,
        )
        num_heads = model_config.num_heads // tp.size
        num_kv_heads = max(model_config.num_kv_heads // tp.size, 1)  # replicated when fewer than ranks
        per_token = KVPool.bytes_per_token(model_config.num_layers, num_kv_heads, model_config.head_dim, self.dtype)
        self.num_pages = kv_pages(config, per_token, self.max_model_len, self.device)
        self.kv_pool = KVPool(
            model_config.num_layers, self.num_pages, config.page_size, num_kv_heads,
            model_config.head_dim, self.dtype, self.device,
        )  # fmt: skip
        self.page_table = PageTable(config.max_running_requests, self.max_model_len, self.device)
        self.attn_ctx = AttentionContext(
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=model_config.head_dim,
            num_layers=model_config.num_layers,
            page_size=config.page_size,
            kv_pool=self.kv_pool,
            page_table=self.page_table.device_table,
            max_batch_size=config.max_running_requests,
            max_model_len=self.max_model_len,
            dtype=self.dtype,
            device=self.device,
            options=MappingProxyType(config.attention_options),
        )
        self.prefill_attn, self.decode_attn = self._create_backends()
        self.sampler = Sampler(self.device, config.seed)
        self.last_token = torch.zeros(self.page_table.num_rows, dtype=torch.int64, device=self.device)
        self.graph_runner: CudaGraphRunner | None = None
        self.piecewise: PiecewiseGraphRunner | None = None
        self._prompt: PromptLogprobs | None = None
        """Prompt logprobs computed by the forward of the step being run, until its sampling."""

    def _create_backends(self) -> tuple[AttentionBackend, AttentionBackend]:
        """The prefill and decode backends (one shared instance when both names agree)."""
        names = [resolve_attention(n, self.device, self.model_config) for n in self.config.attention_names]
        prefill = build(ATTENTION, names[0], self.attn_ctx, AttentionBackend)
        decode = prefill if names[1] == names[0] else build(ATTENTION, names[1], self.attn_ctx, AttentionBackend)
        logger.info("attention: prefill=%s decode=%s", *names)
        return prefill, decode

    # -- start-up -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Warm kernels up and capture CUDA graphs (every TP rank does the same, in the same order)."""
        if self.device.type == "cuda":
            self.warmup()
            self.capture_cuda_graphs()

    def warmup(self) -> None:
        """Run one dummy prefill and decode step (on the dummy row and the reserved page 0), so kernels
        are compiled / autotuned before the first request or graph capture."""
        start = time.perf_counter()
        n = min(256, self.max_model_len - 1)
        row = self.page_table.dummy_row
        params = [SamplingParams(temperature=0.0)]
        for phase, q, kv in ((Phase.PREFILL, n, n), (Phase.DECODE, 1, n + 1)):
            plan = StepPlan(
                phase=phase, rows=[row], q_lens=[q], kv_lens=[kv], out_slots=torch.zeros(q, dtype=torch.int64),
                sample=[0], sampling=SamplingBatch.build(params, [0], [row]),
                input_ids=torch.zeros(q, dtype=torch.int64) if phase is Phase.PREFILL else None,
            )  # fmt: skip
            self.execute(plan).wait()
        logger.info("warmed up kernels in %.1f s", time.perf_counter() - start)

    def capture_cuda_graphs(self) -> None:
        """Capture the decode graphs, and the piecewise graphs of prefill and mixed steps, where the device,
        the decode backend and the config allow."""
        self._capture_piecewise()
        max_bs = self.config.cuda_graph_max_bs
        if max_bs is None:
            max_bs = self.config.max_running_requests
        max_bs = min(max_bs, self.config.max_running_requests)
        if self.device.type != "cuda" or max_bs <= 0:
            return
        if not self.decode_attn.supports_cuda_graph:
            logger.info("CUDA graphs off: attention backend %s cannot be captured", type(self.decode_attn).__name__)
            return
        runner = CudaGraphRunner(
            self.model, self.decode_attn, self.kv_pool, self.page_table, self.last_token, self.config.page_size,
            max_bs, self.device,
        )  # fmt: skip
        runner.capture()
        self.graph_runner = runner

    def _capture_piecewise(self) -> None:
        max_tokens = min(
            self.config.piecewise_cuda_graph_max_tokens,
            self.config.max_prefill_tokens + self.config.max_running_requests,  # the largest mixed step
        )
        if self.device.type != "cuda" or max_tokens <= 0:
            return
        runner = PiecewiseGraphRunner(
            self.model, self.kv_pool, self.page_table.device_table, self.config.page_size, max_tokens,
            self.config.max_running_requests, self.device,
        )  # fmt: skip
        try:
            runner.capture()
        except Exception as exc:
            raise RuntimeError(
                f"capturing piecewise CUDA graphs failed ({exc}); run with --piecewise-cuda-graph-max-tokens 0"
            ) from exc
        self.piecewise = runner

    # -- one step -----------------------------------------------------------------------------------

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    def make_batch(self, plan: StepPlan) -> ForwardBatch:
        """Build the device tensors of ``plan`` (and write its new slots into the device page table)."""
        q_lens = np.asarray(plan.q_lens, dtype=np.int64)
        kv_lens = np.asarray(plan.kv_lens, dtype=np.int64)
        rows = np.asarray(plan.rows, dtype=np.int64)
        cu_q = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(q_lens, out=cu_q[1:])
        cu_kv = np.zeros_like(cu_q)
        np.cumsum(kv_lens, out=cu_kv[1:])
        if plan.phase is Phase.DECODE:
            positions = kv_lens - 1
            token_rows = rows
        else:  # token t of request i sits at position kv_len_i - q_len_i + (t - cu_q_i)
            token_rows = np.repeat(rows, q_lens)
            positions = np.arange(plan.num_tokens, dtype=np.int64) + np.repeat(kv_lens - q_lens - cu_q[:-1], q_lens)
        sample_indices = cu_q[1:][np.asarray(plan.sample, dtype=np.int64)] - 1
        host = [positions, plan.out_slots.numpy(), rows, q_lens, kv_lens, cu_q, cu_kv, sample_indices, token_rows]
        if plan.phase is Phase.PREFILL:
            assert plan.input_ids is not None, "prefill plans carry their token ids"
            host.append(plan.input_ids.numpy())
        # one host-to-device copy for the whole step, split (and narrowed back to int32) on the device
        packed = self._to_device(torch.from_numpy(np.concatenate(host, dtype=np.int64)))
        dev = list(packed.split([len(t) for t in host]))
        for i in (3, 4, 5, 6):  # q_lens, kv_lens, cu_q, cu_kv are int32
            dev[i] = dev[i].to(torch.int32)
        positions_d, slots_d, rows_d, q_d, kv_d, cu_q_d, cu_kv_d, sample_d, token_rows_d = dev[:9]
        input_ids = self.last_token[rows_d] if plan.phase is Phase.DECODE else dev[9]
        if plan.num_device_inputs:  # a mixed step: its decoding requests' tokens are on the device
            input_ids[-plan.num_device_inputs :] = self.last_token[rows_d[-plan.num_device_inputs :]]
        self.page_table.write_step(token_rows_d, positions_d, slots_d)
        return ForwardBatch(
            phase=plan.phase,
            input_ids=input_ids,
            positions=positions_d,
            out_slots=slots_d,
            rows=rows_d,
            q_lens=q_d,
            kv_lens=kv_d,
            cu_q_lens=cu_q_d,
            cu_kv_lens=cu_kv_d,
            sample_indices=sample_d,
            q_lens_host=plan.q_lens,
            kv_lens_host=plan.kv_lens,
            page_table=self.page_table.device_table,
            page_size=self.config.page_size,
            kv_pool=self.kv_pool,
        )

    def run(self, plan: StepPlan) -> StepOutput:
        """Run one step (rank 0: first hand the plan to the other ranks); returns at once on CUDA, the host
        copy of the sampled tokens completes asynchronously."""
        if get_tp().size > 1:
            broadcast_object(plan)
        return self.execute(plan)

    def forward(self, plan: StepPlan) -> torch.Tensor:
        """Rank 0, first half of :meth:`run`: hand the plan to the other ranks and launch the forward; returns
        the logits of the sampled rows. :meth:`sample` must follow before the next plan (the other ranks
        run the whole step: only rank 0's tokens count, so only rank 0 needs a step's bitmask)."""
        if get_tp().size > 1:
            broadcast_object(plan)
        return self._forward(plan)

    @torch.inference_mode()
    def sample(self, plan: StepPlan, logits: torch.Tensor, mask: torch.Tensor | None = None) -> StepOutput:
        """Second half of a step: sample ``logits`` (under the host token bitmask ``mask``, when given, copied
        to the device here), share the tokens with the other ranks and start their copy to the host."""
        sampling = plan.sampling
        if mask is not None:
            sampling = dataclasses.replace(sampling, mask=mask)
        sampling = sampling.to(self.device)
        result = self.sampler.sample(logits, sampling)
        result.prompt, self._prompt = self._prompt, None
        broadcast_tensor(result.tokens)  # every rank continues with rank 0's tokens
        if plan.sample:
            sample_rows = sampling.ints[:, 3]
            self.last_token[sample_rows] = result.tokens
            if self.sampler.penalties is not None:
                self.sampler.penalties.record(sample_rows, result.tokens)
        return StepOutput.start(result, self.device)

    def follow(self) -> None:
        """Ranks other than 0: run every plan rank 0 broadcasts, until it broadcasts ``None``."""
        while (plan := broadcast_object(None)) is not None:
            self.execute(plan)

    def stop_followers(self) -> None:
        """Rank 0: tell the other ranks to leave :meth:`follow`."""
        if get_tp().size > 1:
            broadcast_object(None)

    def execute(self, plan: StepPlan) -> StepOutput:
        """Run one step on this rank (every rank of a TP group executes the same plans in the same order)."""
        return self.sample(plan, self._forward(plan))

    @torch.inference_mode()
    def _forward(self, plan: StepPlan) -> torch.Tensor:
        self.page_table.apply_writes(plan.table_writes, self._to_device)
        self._init_penalties(plan)
        runner = self.graph_runner
        if plan.phase is Phase.DECODE and runner is not None and runner.can_run(plan.batch_size):
            _, logits = runner.replay(plan)
        else:
            batch = self.make_batch(plan)
            extra = 0
            if plan.prompt_logprobs:  # also the logits of every prompt position these requests score
                idx = prompt_positions(plan.q_lens, plan.prompt_logprobs)
                extra = len(idx)
                batch.sample_indices = torch.cat([self._to_device(torch.from_numpy(idx)), batch.sample_indices])
            batch.attn = self.decode_attn if plan.phase is Phase.DECODE else self.prefill_attn
            batch.attn.prepare(batch)
            pieces = self.piecewise if plan.phase is Phase.PREFILL and not extra else None
            if pieces is not None and pieces.can_run(plan.num_tokens, len(plan.sample)):
                logits = pieces.run(batch, self.prefill_attn)
            else:
                logits = self.model(batch)
            if extra:
                assert plan.prompt_targets is not None
                self._prompt = score(logits[:extra], self._to_device(plan.prompt_targets), plan.prompt_top)
                logits = logits[extra:]
        return logits

    def _init_penalties(self, plan: StepPlan) -> None:
        if not plan.penalty_init:
            return
        if self.sampler.penalties is None:
            self.sampler.penalties = PenaltyState(self.page_table.num_rows, self.model_config.vocab_size, self.device)
        for row, prompt_ids, output_ids in plan.penalty_init:
            self.sampler.penalties.reset(row, self._to_device(prompt_ids), self._to_device(output_ids))
