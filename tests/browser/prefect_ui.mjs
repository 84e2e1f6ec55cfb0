// Drives the Prefect UI in Debian's Chromium (playwright-core, never a downloaded browser).
//   node prefect_ui.mjs run UI_URL DEPLOYMENT FLOW REPO SCREENSHOT   find FLOW's deployment, press Run, choose REPO
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
    const [name, flow, repo, screenshot] = rest;
    await page.goto(`${ui}/deployments`);
    await page.getByPlaceholder('Search deployments...').waitFor(FIRST_RENDER);
    await page.getByPlaceholder('Search deployments...').fill(name);
    const row = page.locator('tr', { hasText: flow }).filter({ hasText: name }).first();
    await row.getByRole('link', { name, exact: true }).click();
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByText('Custom run', { exact: true }).click();
    // The deployment serves many stacks: its repo parameter is a list to choose from, with a search box.
    const repoField = page.locator('.schema-form-property', { has: page.getByText('repo', { exact: true }) }).first();
    await repoField.locator('.p-select-button').click();
    await page.keyboard.press('ArrowDown');
    await page.getByPlaceholder('Search', { exact: true }).fill(repo);
    await page.getByRole('option', { name: repo, exact: true }).click();
    await page.screenshot({ path: screenshot });
    await page.getByRole('button', { name: 'Submit', exact: true }).click();
    // The form leaves once the server has created the run: on a loaded 2-core machine that took over 60 s twice.
    await page.waitForURL((url) => !url.pathname.endsWith('/run'), FIRST_RENDER);
    console.log(`pressed Run on ${flow}/${name} for ${repo}`);
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
