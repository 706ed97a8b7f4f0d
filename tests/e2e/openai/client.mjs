// The official openai SDK against the edge (tests/e2e, TestOpenAISDK*).
// Environment: OPENAI_BASE_URL (the gateway's /v1), OPENAI_API_KEY (an sk_
// key created through the API), MODEL. Modes (argv[2]):
//   chat     models.list, one chat completion, one streamed chat completion;
//            prints {"models":[…],"content":…,"streamed":…,"chunks":n}
//   revoked  REVOKE_URL + REVOKE_BEARER: DELETE the key (plain fetch), then
//            call the SDK until it gets 401 or DEADLINE_MS pass; prints
//            {"status":401,"elapsed_ms":…,"attempts":n}
//   run      as the child of `edgectl run` (TestEdgectlRun*): chat as above,
//            then hands its key to the test over loopback TCP (KEY_SINK
//            host:port; never printed) and exits CHILD_EXIT (default 0)
//   wait     as the child of `edgectl run`: hands its key and pid to
//            KEY_SINK, prints {"ready":true}, then waits; on SIGTERM, SIGINT
//            or SIGHUP prints {"signal":…} and exits 64+N
//   budget   a key with a small token budget (TestOpenAISDKHitsAKeysTokenBudget):
//            a stream with stream_options.include_usage, one without, then
//            plain chat completions (.withResponse(), PACE_MS apart: the
//            edge's per-identity limit) until the SDK throws, at most
//            MAX_REQUESTS; prints {"usage_stream":…,"plain_stream":…,
//            "answers":[…],"refusal":…} — the figures, never the key
// Errors print {"error":{"status":…,"name":…}} (never the key) and exit 1.
import OpenAI from "openai";
import net from "node:net";

const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL,
  apiKey: process.env.OPENAI_API_KEY,
  maxRetries: 0,
  timeout: 15000,
});
const model = process.env.MODEL || "stub-model";
const messages = [{ role: "user", content: "hello" }];

function fail(err) {
  console.log(JSON.stringify({ error: { status: err?.status ?? null, name: err?.name ?? "Error", code: err?.code ?? null } }));
  process.exit(1);
}

async function chat() {
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  const res = await client.chat.completions.create({ model, messages });
  const stream = await client.chat.completions.create({ model, messages, stream: true });
  let streamed = "";
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    streamed += chunk.choices?.[0]?.delta?.content ?? "";
  }
  console.log(JSON.stringify({ models, content: res.choices[0].message.content, streamed, chunks }));
}

async function revoked() {
  const deadline = Number(process.env.DEADLINE_MS || "1000");
  const del = await fetch(process.env.REVOKE_URL, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${process.env.REVOKE_BEARER}` },
  });
  if (del.status !== 204) fail({ status: del.status, name: "RevokeFailed" });
  const start = performance.now();
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      await client.chat.completions.create({ model, messages });
    } catch (err) {
      if (err?.status === 401) {
        console.log(JSON.stringify({ status: 401, elapsed_ms: Math.round(performance.now() - start), attempts }));
        return;
      }
      fail(err);
    }
    if (performance.now() - start > deadline) {
      console.log(JSON.stringify({ status: 200, elapsed_ms: Math.round(performance.now() - start), attempts }));
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

// sink hands the key (and the pid) to the test: the child's environment is
// the only other place it exists.
function sink() {
  const [host, port] = process.env.KEY_SINK.split(":");
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), host, () => {
      sock.end(JSON.stringify({ key: process.env.OPENAI_API_KEY, pid: process.pid }), resolve);
    });
    sock.on("error", reject);
  });
}

async function run() {
  await chat();
  await sink();
  process.exit(Number(process.env.CHILD_EXIT || "0"));
}

async function wait() {
  const signals = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
  for (const [name, n] of Object.entries(signals)) {
    process.on(name, () => {
      console.log(JSON.stringify({ signal: name }));
      process.exit(64 + n);
    });
  }
  await sink();
  console.log(JSON.stringify({ ready: true }));
  setInterval(() => {}, 1 << 30);
}

// tokens counts the stub's words ("tok0 tok1 …": one token a word).
const tokens = (text) => text.split(" ").filter((w) => w !== "").length;

// streamed runs one streamed chat completion and reports its chunks: the
// content chunks, those carrying a usage object (usage: null counts as
// none), those with a usage key at all, and the final chunk's shape.
async function streamed(extra) {
  const stream = await client.chat.completions.create({ model, messages, stream: true, ...extra });
  const out = { chunks: 0, content_chunks: 0, content_tokens: 0, usage_chunks: 0, usage_keys: 0, usage: null, last_usage_chunk: -1, last_choices: null };
  let text = "";
  for await (const chunk of stream) {
    const delta = chunk.choices?.[0]?.delta?.content ?? "";
    if (delta !== "") out.content_chunks++;
    text += delta;
    if ("usage" in chunk) out.usage_keys++;
    if (chunk.usage != null) {
      out.usage_chunks++;
      out.usage = chunk.usage;
      out.last_usage_chunk = out.chunks;
    }
    out.last_choices = chunk.choices?.length ?? null;
    out.chunks++;
  }
  out.content_tokens = tokens(text);
  return out;
}

async function budget() {
  const pace = Number(process.env.PACE_MS || "120");
  const most = Number(process.env.MAX_REQUESTS || "40");
  const sleep = () => new Promise((r) => setTimeout(r, pace));
  const out = {
    usage_stream: await streamed({ stream_options: { include_usage: true } }),
    plain_stream: (await sleep(), await streamed({})),
    answers: [],
    refusal: null,
  };
  for (let i = 0; i < most && out.refusal === null; i++) {
    await sleep();
    try {
      const { data, response } = await client.chat.completions.create({ model, messages }).withResponse();
      const h = (name) => response.headers.get(name);
      out.answers.push({
        status: response.status,
        usage: data.usage,
        content_tokens: tokens(data.choices[0].message.content),
        finish_reason: data.choices[0].finish_reason,
        limit_tokens: h("x-ratelimit-limit-tokens"),
        remaining_tokens: h("x-ratelimit-remaining-tokens"),
        reset_tokens: h("x-ratelimit-reset-tokens"),
      });
    } catch (err) {
      out.refusal = {
        rate_limit_error: err instanceof OpenAI.RateLimitError,
        api_error: err instanceof OpenAI.APIError,
        name: err?.name ?? null,
        status: err?.status ?? null,
        // the SDK's reading of the OpenAI body {"error":{…}}
        type: err?.type ?? null,
        code: err?.code ?? null,
        param: err?.param ?? null,
        error: err?.error ?? null,
        message: err?.message ?? null,
        retry_after: err?.headers?.get?.("retry-after") ?? null,
        limit_tokens: err?.headers?.get?.("x-ratelimit-limit-tokens") ?? null,
      };
    }
  }
  console.log(JSON.stringify(out));
}

const mode = process.argv[2];
try {
  if (mode === "chat") await chat();
  else if (mode === "revoked") await revoked();
  else if (mode === "run") await run();
  else if (mode === "wait") await wait();
  else if (mode === "budget") await budget();
  else fail({ name: `unknown mode ${mode}` });
} catch (err) {
  fail(err);
}
