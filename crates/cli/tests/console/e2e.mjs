// The console end to end in Debian's Chromium, driven by playwright-core (no browser download),
// against the real `btar server` that crates/cli/tests/console.rs starts. Environment:
//   BTAR_URL, BTAR_TOKEN   the server and its API token
//   PGPORT                 the source cluster (trust auth on 127.0.0.1, user postgres)
//   FORK_NAME              the name of the fork the test creates
//   SHOTS                  optional: a directory for one screenshot per view (docs/ in the repo)
//   CHROMIUM               optional: the browser (default /usr/bin/chromium)
// Exits 0 when every step passed; otherwise prints the failed step, the page's text and a
// screenshot path, and exits 1.

import {execFileSync} from 'node:child_process';
import {mkdirSync, readFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

const env = name => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const URL = env('BTAR_URL');
const TOKEN = env('BTAR_TOKEN');
const PGPORT = env('PGPORT');
const FORK = env('FORK_NAME');
const SHOTS = process.env.SHOTS || '';
const here = path.dirname(fileURLToPath(import.meta.url));

const started = Date.now();
const log = text => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);
const sleep = ms => new Promise(r => setTimeout(r, ms));

function psql(port, sql) {
  return execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', sql],
    {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']}).trim();
}

/** A local time as a datetime-local input takes it (the browser runs in this process's zone). */
function localInput(d) {
  const p = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

// The vendored uPlot is the npm package's file, unmodified (its provenance, checked).
const vendored = path.join(here, '../../../control/src/api/console/vendor/uplot/uPlot.esm.js');
assert(readFileSync(vendored).equals(readFileSync(path.join(here, 'node_modules/uplot/dist/uPlot.esm.js'))),
  'vendor/uplot/uPlot.esm.js differs from the npm package of the pinned version');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Chromium's sandbox cannot start as root (CI runs as root).
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
const context = await browser.newContext({viewport: {width: 1280, height: 860}, deviceScaleFactor: 1});
const page = await context.newPage();
page.setDefaultTimeout(20000);
const problems = [];
page.on('pageerror', e => problems.push(`page error: ${e.message}`));
page.on('console', m => {
  // CSP violations, failed module loads and uncaught errors all land here.
  if (m.type() === 'error' && !/status of 40[13]|status of 409/.test(m.text())) problems.push(`console error: ${m.text()}`);
});
// Nothing but the server itself is ever contacted, and the token never rides in a URL.
page.on('request', r => {
  if (!r.url().startsWith(URL)) problems.push(`request outside the server: ${r.url()}`);
  if (r.url().includes(TOKEN)) problems.push(`token in a URL: ${r.url()}`);
});

let current = 'start';
async function step(name, fn) {
  current = name;
  const t = Date.now();
  await fn();
  log(`ok  ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

async function shot(name, target = page) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, {recursive: true});
  // Toasts come and go; they are not part of the view.
  await page.evaluate(() => document.getElementById('toasts').replaceChildren());
  await page.waitForTimeout(300);
  await target.screenshot({path: path.join(SHOTS, `console-${name}.png`), ...(target === page ? {fullPage: true} : {})});
}

/** Every form control has an accessible name, and the page does not overflow 1024 px. */
async function accessible(view) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby') && !(el.textContent || '').trim())
    .map(el => el.outerHTML.slice(0, 120)));
  assert(!unlabelled.length, `${view}: controls without a label: ${unlabelled.join(' | ')}`);
  await page.setViewportSize({width: 1024, height: 860});
  await page.waitForTimeout(400);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.setViewportSize({width: 1280, height: 860});
  assert(width <= 1024, `${view}: ${width} px wide at a 1024 px window`);
}

const main = page.locator('main');
const servicePage = async name => {
  await page.goto(`${URL}/#/service/${name}`);
  await page.getByRole('heading', {level: 1, name}).waitFor();
};
/** The window end (ISO) the page shows for a location, or null. */
const windowEnd = region => page.locator('.window-row', {has: page.locator('strong', {hasText: new RegExp(`^${region}$`)})})
  .locator('time').nth(1).getAttribute('datetime', {timeout: 2000}).catch(() => null);

let newBackup = '';
try {
  await step('a wrong token shows an error, not a blank page', async () => {
    const response = await page.goto(URL);
    const csp = response.headers()['content-security-policy'] || '';
    assert(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
    await page.getByLabel('API token').fill('not-the-token-0123456789');
    await page.getByRole('button', {name: 'Sign in'}).click();
    await page.getByRole('alert').filter({hasText: 'refused'}).waitFor();
    const text = await page.getByRole('alert').innerText();
    assert(text.includes('403'), `the refusal names the status: ${text}`);
    await page.getByLabel('API token').waitFor();
    assert(await page.getByRole('button', {name: 'Sign out'}).isHidden(), 'no Sign out before signing in');
    await accessible('sign-in');
    await shot('signin');
  });

  await step('sign in; the services list shows the service and its newest backup', async () => {
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', {name: 'Sign in'}).click();
    await page.getByRole('heading', {level: 1, name: 'Services'}).waitFor();
    await main.getByRole('link', {name: 'orders', exact: true}).waitFor();
    // "now" within 5 s of the backup, "… ago" after.
    await main.locator('td', {hasText: / ago\b|\(now,/}).first().waitFor();
    assert(!(await page.evaluate(() => location.href)).includes('token'), 'token in the address');
    await accessible('services');
  });

  await step('the Backups page: the backup in the primary location, its window, no region yet', async () => {
    await main.getByRole('link', {name: 'orders', exact: true}).click();
    await page.getByRole('heading', {level: 1, name: 'orders'}).waitFor();
    await main.getByText('Disabled.').waitFor();
    const rows = main.locator('section', {has: page.getByRole('heading', {name: 'Backups', exact: true})}).locator('tbody tr');
    assert(await rows.count() === 1, 'one backup');
    assert((await rows.first().innerText()).includes('COMPLETED'), 'completed in the primary');
    assert(await windowEnd('home'), 'a window in home');
  });

  await step('enable an additional region, with the rules shown before submitting', async () => {
    await main.getByRole('button', {name: 'Enable backup to another region…'}).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByText('Once per 24 hours.').waitFor();
    await dlg.getByText('Same provider.').waitFor();
    // The other provider's region is flagged before anything is sent.
    await dlg.getByLabel(/far-aws/).check();
    await dlg.getByText('the server refuses copies across providers').waitFor();
    await dlg.getByLabel(/far-aws/).uncheck();
    await dlg.getByLabel(/\baway\b/).check();
    await dlg.getByText('Enabling away').waitFor();
    await accessible('regions dialog');
    await dlg.getByRole('button', {name: 'Save regions'}).click();
    await dlg.waitFor({state: 'detached'});
    await main.getByText('Every backup and the log archive are copied to').waitFor();
    await main.getByText('the next change is allowed').waitFor();
  });

  await step('Back up now: the backup commits and its copy job reaches COMPLETED', async () => {
    await main.getByRole('button', {name: 'Back up now'}).click();
    const activity = main.locator('.activity');
    await activity.getByText(/committed in home/).waitFor({timeout: 90000});
    newBackup = (/Backup (\S+) committed/.exec(await activity.innerText()) || [])[1];
    assert(newBackup, 'the new backup is named');
    await activity.getByText('Copied to').waitFor({timeout: 90000});
    assert((await activity.innerText()).includes('COMPLETED'), `copy completed: ${await activity.innerText()}`);
    await accessible('service');
    await activity.getByRole('link', {name: 'see its copy jobs'}).click();
    await page.getByRole('heading', {level: 1, name: 'Copy jobs'}).waitFor();
    const row = main.locator('tbody tr', {hasText: newBackup});
    await row.getByText('COMPLETED').waitFor({timeout: 30000});
    assert((await row.innerText()).includes('away'), 'copied to away');
    assert(await page.getByLabel('Service').inputValue() === 'orders', 'filtered by service');
  });

  await step('copy-job filters: state and destination narrow the list', async () => {
    await page.getByLabel('State').selectOption('FAILED');
    await page.getByRole('button', {name: 'Apply'}).click();
    await main.getByText('No copy job matches these filters.').waitFor();
    await page.getByLabel('State').selectOption('COMPLETED');
    await page.getByLabel('Destination').selectOption('away');
    await page.getByLabel('Created after').fill(localInput(new Date(Date.now() - 3600e3)));
    await page.getByRole('button', {name: 'Apply'}).click();
    await main.locator('tbody tr', {hasText: newBackup}).waitFor();
    assert(!(await page.evaluate(() => location.hash)).includes('token'), 'no token in the hash');
    await accessible('copy jobs');
    await shot('copy-jobs');
  });

  await step('the service and its backups in both locations', async () => {
    await servicePage('orders');
    const row = main.locator('tbody tr', {hasText: newBackup});
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    // Backup, Taken, Size, home (primary), away (secondary).
    assert(cells[3].includes('COMPLETED') && cells[4].includes('COMPLETED'), `both locations: ${cells.join(' | ')}`);
    assert(await windowEnd('away'), 'a window in away');
    await main.getByRole('heading', {name: 'To away'}).waitFor();
  });

  await step('a second region change is refused by the 24-hour rule, readably', async () => {
    await main.getByRole('button', {name: 'Change or disable regions…'}).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByText('The 24-hour rule').waitFor();
    await dlg.getByLabel(/\baway\b/).uncheck();
    await dlg.getByText('Disabling away').waitFor();
    await dlg.getByRole('button', {name: 'Disable backup to another region'}).click();
    const alert = dlg.getByRole('alert');
    await alert.waitFor();
    const text = await alert.innerText();
    assert(text.includes('409') && /next change allowed/i.test(text), `409 shown: ${text}`);
    await shot('regions', dlg);
    await dlg.getByRole('button', {name: 'Cancel'}).click();
    await dlg.waitFor({state: 'detached'});
    await main.getByText('Every backup and the log archive are copied to').waitFor();
  });

  let target;
  await step('rows before and after a target time; the secondary window reaches past it', async () => {
    psql(PGPORT, "CREATE TABLE IF NOT EXISTS console_marks (tag text); INSERT INTO console_marks VALUES ('before')");
    await sleep(1500);
    target = new Date(Math.floor(Date.now() / 1000) * 1000);
    await sleep(1500);
    psql(PGPORT, "INSERT INTO console_marks VALUES ('after')");
    // On its own: in the INSERT's transaction the switch would come before the commit record.
    psql(PGPORT, 'SELECT pg_switch_wal()');
    const deadline = Date.now() + 60000;
    for (;;) {
      await main.getByRole('button', {name: 'Refresh'}).click();
      await page.waitForTimeout(700);
      const end = await windowEnd('away');
      if (end && new Date(end) > new Date(target.getTime() + 1000)) break;
      assert(Date.now() < deadline, `away's window never passed ${target.toISOString()} (end ${end})`);
      await page.waitForTimeout(1000);
    }
    await main.getByRole('radio', {name: 'hour'}).check();
    await main.locator('.lag .uplot canvas').first().waitFor();
    await accessible('service');
    await shot('backups');
  });

  await step('Fork & restore from the secondary to the target time; the fork runs', async () => {
    await main.getByRole('button', {name: 'Fork & restore…'}).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByRole('radio', {name: /away/}).check();
    await dlg.getByRole('radio', {name: 'A point in time'}).check();
    const when = dlg.getByLabel(/Recovery target time/);
    // A time outside the location's window is refused before anything is sent.
    await when.fill('2001-01-01T00:00:00');
    await dlg.getByLabel('New service name').fill(FORK);
    await dlg.getByRole('button', {name: 'Fork & restore'}).click();
    await dlg.getByRole('alert').getByText('outside the recoverable window of away').waitFor();
    await when.fill(localInput(target));
    await accessible('fork dialog');
    await dlg.getByRole('button', {name: 'Fork & restore'}).click();
    await dlg.getByText(`Fork ${FORK} is running`).waitFor({timeout: 150000});
    await shot('fork', dlg);
    const conninfo = await dlg.locator('code.conninfo').innerText();
    const port = (/port=(\d+)/.exec(conninfo) || [])[1];
    assert(port, `fork conninfo: ${conninfo}`);
    const rows = psql(port, "SELECT string_agg(tag, ',' ORDER BY tag) FROM console_marks");
    assert(rows === 'before', `the fork holds the rows before ${target.toISOString()}: got ${rows}`);
    await dlg.getByRole('link', {name: `Open ${FORK}`}).click();
    await page.getByRole('heading', {level: 1, name: FORK}).waitFor();
    const meta = await main.locator('.meta').innerText();
    assert(meta.includes('home region away'), `the fork lives in away: ${meta}`);
    log(`fork ${FORK} on port ${port} holds: ${rows}`);
  });

  await step('the services list, with the fork', async () => {
    await page.goto(`${URL}/#/services`);
    await main.getByRole('link', {name: FORK, exact: true}).waitFor();
    await main.locator('td', {hasText: 'ago'}).first().waitFor();
    await shot('services');
  });

  await step('events and alerts: the check and the log, the fork among them', async () => {
    await page.getByRole('link', {name: 'Events & alerts'}).click();
    await page.getByRole('heading', {level: 1, name: 'Events & alerts'}).waitFor();
    await main.locator('td', {hasText: 'forked from orders'}).first().waitFor();
    await main.getByText(/checks (pass|fail)/).waitFor();
    await accessible('events');
    await shot('events');
  });

  await step('restore drills: the drill the test ran', async () => {
    await page.getByRole('link', {name: 'Restore drills'}).click();
    await page.getByRole('heading', {level: 1, name: 'Restore drills'}).waitFor();
    await main.locator('tbody tr', {hasText: 'SUCCESSFUL'}).first().waitFor();
    await accessible('drills');
    await shot('drills');
  });

  await step('keyboard: the navigation is reachable by Tab and works with Enter', async () => {
    await page.goto(`${URL}/#/services`);
    await page.getByRole('heading', {level: 1, name: 'Services'}).waitFor();
    await page.locator('body').focus();
    let reached = false;
    for (let i = 0; i < 8 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement && document.activeElement.textContent === 'Copy jobs');
    }
    assert(reached, 'Copy jobs link reachable by Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', {level: 1, name: 'Copy jobs'}).waitFor();
  });

  await step('signing out forgets the token', async () => {
    await page.getByRole('button', {name: 'Sign out'}).click();
    await page.getByLabel('API token').waitFor();
    assert(await page.evaluate(() => sessionStorage.getItem('btar-token')) === null, 'token forgotten');
  });

  assert(!problems.length, `the browser reported:\n  ${problems.join('\n  ')}`);
  log('all steps passed');
  await browser.close();
  process.exit(0);
} catch (e) {
  const file = path.join(tmpdir(), `btar-console-failure-${process.pid}.png`);
  await page.screenshot({path: file, fullPage: true}).catch(() => {});
  const text = await page.locator('body').innerText().catch(() => '(no page)');
  console.error(`FAILED at step “${current}”: ${e.stack || e}`);
  if (problems.length) console.error(`browser problems:\n  ${problems.join('\n  ')}`);
  console.error(`screenshot: ${file}\npage text:\n${text.slice(0, 4000)}`);
  await browser.close();
  process.exit(1);
}
