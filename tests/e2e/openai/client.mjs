// The official openai SDK against the edge (tests/e2e, TestOpenAISDK*).
// Environment: OPENAI_BASE_URL (the gateway's /v1), OPENAI_API_KEY (an sk_
// key created through the API), MODEL. Modes (argv[2]):
//   chat     models.list, one chat completion, one streamed chat completion;
//            prints {"models":[…],"content":…,"streamed":…,"chunks":n}
//   revoked  REVOKE_URL + REVOKE_BEARER: DELETE the key (plain fetch), then
//            call the SDK until it gets 401 or DEADLINE_MS pass; prints
//            {"status":401,"elapsed_ms":…,"attempts":n}
// Errors print {"error":{"status":…,"name":…}} (never the key) and exit 1.
import OpenAI from "openai";

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

const mode = process.argv[2];
try {
  if (mode === "chat") await chat();
  else if (mode === "revoked") await revoked();
  else fail({ name: `unknown mode ${mode}` });
} catch (err) {
  fail(err);
}
