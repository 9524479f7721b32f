// Drives Debian's headless Chromium with playwright-core through a sign-in.
//   node browser_signin.js password URL SHOT USER PASSWORD
//   node browser_signin.js certificate URL SHOT CA_CN
// env: CHROMIUM (default /usr/bin/chromium), UDD (a fresh user-data-dir), HOME
// (whose .pki/nssdb holds the trust and, for certificate, the user's key).
// Prints "RESULT <text of #result or #message>" and exits 0 when signed in.
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const [mode, url, shot, a1, a2] = process.argv.slice(2);
const args = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run'];

(async () => {
  const udd = process.env.UDD;
  fs.rmSync(udd, { recursive: true, force: true });
  fs.mkdirSync(path.join(udd, 'Default'), { recursive: true });
  if (mode === 'certificate') {
    // Without an auto-select rule headless Chromium would wait forever on an
    // invisible certificate picker.
    const origin = new URL(url).origin;
    fs.writeFileSync(path.join(udd, 'Default', 'Preferences'), JSON.stringify({
      profile: { content_settings: { exceptions: { auto_select_certificate: {
        [`${origin},*`]: { setting: { filters: [{ ISSUER: { CN: a1 } }] } } } } } } }));
  }
  const context = await chromium.launchPersistentContext(udd, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args,
    env: process.env, viewport: { width: 900, height: 700 } });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(url);
  if (mode === 'password') {
    await page.screenshot({ path: shot.replace(/\.png$/, '-form.png') });
    await page.getByLabel('Username').fill(a1);
    await page.getByLabel('Password').fill(a2);
    await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  }
  await page.screenshot({ path: shot });
  const result = await page.locator('#result, #message').first().textContent().catch(() => '');
  const user = await page.locator('#user').textContent().catch(() => '');
  console.log('RESULT', result.trim(), 'USER', user.trim());
  await context.close();
  process.exit(/signed in/.test(result) ? 0 : 1);
})().catch(e => { console.error('ERROR', e.message.split('\n')[0]); process.exit(2); });
