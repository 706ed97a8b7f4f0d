// device.mjs — a person approving (or refusing) an OAuth 2.0 device login in
// a real headless browser, for edgectl's end-to-end test (cli/e2e).
//
//   node device.mjs approve|deny < input.json
//
// input.json (on stdin, never on the command line, which `ps` shows):
//   {"url": "<verification_uri_complete>", "username": "...", "password": "..."}
//
// It opens the URL in Debian's Chromium (EDGEGUARD_CHROMIUM, default
// /usr/bin/chromium) through playwright-core, fills Keycloak's login form
// (#username, #password, #kc-login), answers the grant-access page with "Yes"
// (accept) or "No" (cancel), and prints one JSON line with the page reached
// (title and the start of its text). Exit 0 done, 1 failed (the step and the
// error on stderr). The password is never printed.
import { chromium } from 'playwright-core';

const action = process.argv[2];
if (action !== 'approve' && action !== 'deny') {
  console.error('usage: node device.mjs approve|deny < {"url","username","password"}');
  process.exit(2);
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

const input = JSON.parse(await readStdin());
const started = Date.now();
let step = 'launch';
const browser = await chromium.launch({
  executablePath: process.env.EDGEGUARD_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 30000,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(20000);

  step = 'open verification URL';
  await page.goto(input.url, { waitUntil: 'domcontentloaded' });

  step = 'login form';
  await page.waitForSelector('#username');
  await page.fill('#username', input.username);
  await page.fill('#password', input.password);
  await Promise.all([page.waitForLoadState('domcontentloaded'), page.click('#kc-login')]);

  step = 'grant-access page';
  const button = action === 'approve' ? '[name="accept"]' : '[name="cancel"]';
  await page.waitForSelector(button);
  await Promise.all([page.waitForURL(() => true, { waitUntil: 'domcontentloaded' }), page.click(button)]);
  await page.waitForLoadState('domcontentloaded');

  step = 'result page';
  const text = ((await page.textContent('body')) || '').replace(/\s+/g, ' ').trim();
  console.log(JSON.stringify({ ok: true, action, title: await page.title(), text: text.slice(0, 300), ms: Date.now() - started }));
} catch (e) {
  const msg = String((e && e.message) || e).split(input.password).join('[redacted]');
  console.error(JSON.stringify({ ok: false, action, step, error: msg.slice(0, 2000) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
