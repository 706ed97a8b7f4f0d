// webauthn.mjs — a person logging in to Keycloak in a real headless browser
// with (or without) a security key, for the WebAuthn end-to-end test
// (tests/e2e TestAdminSecurityKeyInChromium). The key is a virtual FIDO2
// authenticator of the Chrome DevTools Protocol's WebAuthn domain
// (WebAuthn.addVirtualAuthenticator: CTAP2 over USB, user verification,
// presence simulated), created on a CDP session of the page.
//
//   node webauthn.mjs < commands
//
// One JSON command a line on stdin, one JSON answer a line on stdout, in
// order (the passwords travel on stdin only, never on the command line,
// which `ps` shows; an answer never carries a password):
//
//   {"op":"open","session":S,"authenticator":"security-key"|"none"}
//       a fresh browser context (no cookies); "security-key" adds a virtual
//       authenticator with no credential yet to its page
//   {"op":"login","session":S,"url":U,"redirect":R,"username":..,"password":..,"register":bool}
//       opens U (an authorization request whose redirect_uri starts with R),
//       fills the login form, then answers what Keycloak shows: the security
//       key registration page (only when "register"; it is reported either
//       way) and the security key page, each at most once. Answer:
//       {"ok":true,"outcome":"code","redirect":<R…?code=…>,"pages":[…]} when
//       the browser reached R, else {"ok":true,"outcome":"page",
//       "pages":[…],"title":..,"text":..} with the page it stopped at.
//       pages names what was shown: "login", "register-security-key",
//       "security-key".
//   {"op":"logout","session":S,"url":<end-session endpoint>}
//       logs out in the browser (Keycloak's confirmation page); answers
//       the text of the page reached
//   {"op":"credentials","session":S}
//       the credentials the session's virtual authenticator holds
//       (rpId, resident, signCount; never the private key)
//
// A failed command answers {"ok":false,"op":..,"step":..,"error":..} (the
// password and any code redacted) and the script goes on with the next one.
// Browser: Debian's Chromium (EDGEGUARD_CHROMIUM, default /usr/bin/chromium)
// through playwright-core, as device.mjs.
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const secrets = new Set();
function redact(s) {
  let out = String(s);
  for (const v of secrets) if (v) out = out.split(v).join('[redacted]');
  return out.replace(/([?&#](code|session_state|session_code|client_data)=)[^&\s"']+/g, '$1[redacted]');
}
function answer(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const browser = await chromium.launch({
  executablePath: process.env.EDGEGUARD_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 30000,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
});

const sessions = new Map();

async function open(cmd) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  // The registration page asks for a label with window.prompt.
  page.on('dialog', (d) => (d.type() === 'prompt' ? d.accept('edgeguard e2e key') : d.dismiss()).catch(() => {}));
  const s = { context, page, redirect: null, reached: null };
  // The browser reaching the client's redirect URI ends a login: the first
  // request there carries the code (a redirect from Keycloak, which
  // context.route does not always intercept; the route below answers the
  // retries so the page is not an error page).
  page.on('request', (r) => {
    if (!s.reached && s.redirect && r.url().startsWith(s.redirect)) s.reached = r.url();
  });
  await context.route((u) => s.redirect && u.href.startsWith(s.redirect), (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<title>callback</title>' }));
  if (cmd.authenticator === 'security-key') {
    s.cdp = await context.newCDPSession(page);
    await s.cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await s.cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'usb',
        hasResidentKey: false,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    s.authenticatorId = authenticatorId;
  } else if (cmd.authenticator !== 'none') {
    throw new Error(`unknown authenticator ${cmd.authenticator}`);
  }
  sessions.set(cmd.session, s);
  return {};
}

function session(cmd) {
  const s = sessions.get(cmd.session);
  if (!s) throw new Error(`no session ${cmd.session}`);
  return s;
}

// clickAndSettle clicks and waits until the navigation it starts has loaded.
async function clickAndSettle(s, selector) {
  const nav = s.page.waitForEvent('framenavigated', { predicate: (f) => f === s.page.mainFrame(), timeout: 30000 });
  await s.page.click(selector);
  await nav;
  await s.page.waitForLoadState('domcontentloaded');
}

async function pageText(page) {
  const text = ((await page.innerText('body').catch(() => '')) || '').replace(/\s+/g, ' ').trim();
  return { title: await page.title().catch(() => ''), text: redact(text).slice(0, 300) };
}

async function login(cmd) {
  const s = session(cmd);
  secrets.add(cmd.password);
  s.redirect = cmd.redirect;
  s.reached = null;
  const pages = ['login'];
  const result = () => ({ pages });

  let step = 'open the authorization URL';
  try {
    await s.page.goto(cmd.url, { waitUntil: 'domcontentloaded' });
    step = 'login form';
    await s.page.waitForSelector('#username');
    await s.page.fill('#username', cmd.username);
    await s.page.fill('#password', cmd.password);
    await clickAndSettle(s, '#kc-login');
    for (;;) {
      if (s.reached) return { ...result(), outcome: 'code', redirect: s.reached };
      if (await s.page.$('#registerWebAuthn')) {
        if (pages.includes('register-security-key') || !cmd.register) break;
        pages.push('register-security-key');
        step = 'register the security key';
        await clickAndSettle(s, '#registerWebAuthn');
        continue;
      }
      if (await s.page.$('#authenticateWebAuthnButton')) {
        if (pages.includes('security-key')) break;
        pages.push('security-key');
        step = 'sign in with the security key';
        await clickAndSettle(s, '#authenticateWebAuthnButton');
        continue;
      }
      break;
    }
    if (s.reached) return { ...result(), outcome: 'code', redirect: s.reached };
    return { ...result(), outcome: 'page', ...(await pageText(s.page)) };
  } catch (e) {
    e.step = step;
    e.pages = pages;
    throw e;
  }
}

async function logout(cmd) {
  const s = session(cmd);
  await s.page.goto(cmd.url, { waitUntil: 'domcontentloaded' });
  await clickAndSettle(s, '#kc-logout');
  return pageText(s.page);
}

async function credentials(cmd) {
  const s = session(cmd);
  if (!s.cdp) return { credentials: [] };
  const { credentials } = await s.cdp.send('WebAuthn.getCredentials', { authenticatorId: s.authenticatorId });
  return {
    credentials: credentials.map((c) => ({ rpId: c.rpId, resident: c.isResidentCredential, signCount: c.signCount })),
  };
}

const ops = { open, login, logout, credentials };
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  let cmd = {};
  try {
    cmd = JSON.parse(line);
    const op = ops[cmd.op];
    if (!op) throw new Error(`unknown op ${cmd.op}`);
    answer({ ok: true, op: cmd.op, ...(await op(cmd)) });
  } catch (e) {
    answer({ ok: false, op: cmd.op, step: e.step, pages: e.pages, error: redact((e && e.message) || e).slice(0, 2000) });
  }
}
await browser.close();
