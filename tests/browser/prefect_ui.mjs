// Drives the Prefect UI in Debian's Chromium (playwright-core, never a downloaded browser).
//   node prefect_ui.mjs run UI_URL STACK FLOW SCREENSHOT        find the stack's deployment of FLOW, press Run
//   node prefect_ui.mjs artifact UI_URL FLOW_RUN_ID KEY SCREENSHOT   the run's page shows artifact KEY
import { createRequire } from 'node:module';
const require = createRequire(process.env.PLAYWRIGHT_CORE + '/');
const { chromium } = require('playwright-core');

const [mode, ui, ...rest] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
// The server asks for its password (basic auth); the UI keeps what its login form was given here.
const auth = process.env.PREFECT_API_AUTH_STRING;
if (auth) await page.addInitScript((value) => localStorage.setItem('prefect-password', btoa(value)), auth);
page.setDefaultTimeout(60000);
// The first page parses the UI's bundle of several MB: with both cores busy (the suite runs tests in parallel) that
// alone took over 30 s once, the page still blank. Waiting longer for it checks nothing less.
const FIRST_RENDER = { timeout: 180000 };
try {
  if (mode === 'run') {
    const [stack, flow, screenshot] = rest;
    await page.goto(`${ui}/deployments`);
    await page.getByPlaceholder('Search deployments...').waitFor(FIRST_RENDER);
    await page.getByPlaceholder('Search deployments...').fill(stack);
    const row = page.locator('tr', { hasText: flow }).filter({ hasText: stack }).first();
    await row.getByRole('link', { name: stack, exact: true }).click();
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByText('Quick run', { exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Run', exact: true }).click();
    // The dialog closes once the server has created the run: on a loaded 2-core machine that took over 60 s twice.
    await dialog.waitFor({ state: 'detached', ...FIRST_RENDER });
    await page.screenshot({ path: screenshot });
    console.log(`pressed Run on ${flow}/${stack}`);
  } else if (mode === 'artifact') {
    const [flowRunId, key, screenshot] = rest;
    await page.goto(`${ui}/runs/flow-run/${flowRunId}`);
    await page.getByText('Completed', { exact: true }).first().waitFor(FIRST_RENDER);
    await page.getByText('Artifacts', { exact: true }).first().click();
    await page.getByText(key, { exact: true }).first().waitFor();
    await page.screenshot({ path: screenshot });
    console.log(`artifact ${key} shown on flow run ${flowRunId}`);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} catch (error) {
  await page.screenshot({ path: '/tmp/prefect-ui-failure.png' }).catch(() => {});
  console.error(String(error));
  process.exitCode = 1;
} finally {
  await browser.close();
}
