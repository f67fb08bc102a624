//! The web app in a real browser: Debian's Chromium driven through WebDriver (chromedriver)
//! against the real binary on loopback. One flow, as a lab scientist would use it: a wrong key,
//! sign-in, register (with a pasted sequence to clean and a bad one to refuse), import, humanize
//! and watch it complete, compare the alignment with `veneer humanize`, export, cancel a running
//! job and find its refund in the ledger, run out of credits, lose the server mid-poll, get a key
//! revoked — with no error in the browser console throughout.
//!
//! Needs `chromium` and `chromedriver` (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver` and sets `VENEER_REQUIRE_BROWSER=1`, so CI cannot skip it). Elsewhere the
//! test says it is skipped when they are missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, Server, VH, VL, fast, id_of};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const XSS_NAME: &str = "<img src=x onerror=alert(1)>";
/// The most recently submitted job's row on the humanize screen.
const NEWEST: &str = "#submitted tbody tr:first-child";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver's browser log (`goog:loggingPrefs`), which W3C WebDriver has no command for.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

struct Browser {
    client: Client,
    base: String,
    /// Every console entry seen so far (chromedriver hands each out once).
    console: Vec<Value>,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(base: &str) -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver(driver);
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let caps = caps.as_object().expect("an object").clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        Browser {
            client,
            base: base.to_string(),
            console: Vec::new(),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `condition` (a JS expression) is truthy; panics with `what` after `within`.
    async fn until(&self, condition: &str, within: Duration, what: &str) -> Value {
        let deadline = Instant::now() + within;
        let script = format!("return ({condition}) || null;");
        loop {
            let v = self.js(&script, vec![]).await;
            if !v.is_null() && v != json!(false) {
                return v;
            }
            if Instant::now() > deadline {
                let body = self
                    .js(
                        "return [document.querySelector('main').innerText,
                                 '[banner] ' + document.querySelector('#banner').innerText,
                                 '[url] ' + location.href,
                                 '[fields] ' + [...document.querySelectorAll('main input, main textarea')]
                                     .map(el => el.id + '=' + el.value.length).join(' ')].join('\\n')",
                        vec![],
                    )
                    .await;
                panic!("{what}: not within {within:?}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.until(
            &format!("document.querySelector({css:?})?.textContent"),
            Duration::from_secs(30),
            &format!("text of {css}"),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    async fn fill(&self, css: &str, text: &str) {
        let el = self
            .client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        let el = self
            .client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types a key on the sign-in form and sends it.
    async fn submit_key(&self, key: &str) {
        self.fill("#api-key", key).await;
        self.click("#signin-form button[type=submit]").await;
    }

    /// Fills the register form and sends it.
    async fn register(&self, name: &str, vh: &str, vl: &str) {
        self.fill("#variant-name", name).await;
        self.fill("#variant-vh", vh).await;
        self.fill("#variant-vl", vl).await;
        self.click("#register").await;
    }

    /// Submits one variant from the humanize screen (selected by its URL) and waits until the
    /// newest submitted row is running; returns that job's id.
    async fn submit_until_running(&self, variant: &str) -> String {
        self.goto(&format!("/humanize?variant={variant}")).await;
        self.until(
            &format!("document.getElementById('pick-{variant}')?.checked"),
            Duration::from_secs(10),
            "the variant from the URL is selected",
        )
        .await;
        self.click("#submit-humanizations").await;
        self.until(
            &format!("document.querySelector('{NEWEST}')?.dataset.status === 'running'"),
            Duration::from_secs(20),
            "the submitted job runs",
        )
        .await;
        let id = self
            .js(
                &format!("return document.querySelector('{NEWEST}').dataset.job"),
                vec![],
            )
            .await;
        id.as_str().expect("job id").to_string()
    }

    /// Every control on the screen has a label (or an accessible name, for buttons).
    async fn assert_labelled(&self, screen: &str) {
        let unlabelled = self
            .js(
                "return [...document.querySelectorAll('main input, main select, main textarea, main button')]
                   .filter(el => el.type !== 'hidden')
                   .filter(el => el.tagName === 'BUTTON'
                       ? !(el.textContent.trim() || el.getAttribute('aria-label'))
                       : !(el.labels?.length || el.getAttribute('aria-label')))
                   .map(el => el.outerHTML)",
                vec![],
            )
            .await;
        assert_eq!(unlabelled, json!([]), "{screen}: controls without a label");
    }

    async fn collect_console(&mut self) {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        if let Some(list) = entries.as_array() {
            self.console.extend(list.iter().cloned());
        }
    }
}

fn humanize_offline() -> Value {
    let out = Command::new(BIN)
        .args(["humanize", "--vh", VH, "--vl", VL])
        .output()
        .expect("run veneer humanize");
    assert!(out.status.success(), "veneer humanize failed");
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// Where a screen's screenshot is written for a person to look at (`job`, `variants`).
fn screenshot_path(screen: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/screenshots/{screen}.png"))
}

/// Writes the window as it is now to `screenshot_path(screen)`.
async fn save_screenshot(b: &Browser, screen: &str) {
    let png = b.client.screenshot().await.expect("screenshot");
    let path = screenshot_path(screen);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("screenshot dir");
    std::fs::write(&path, &png).expect("write screenshot");
    eprintln!("web_app: {screen} screenshot at {}", path.display());
}

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present && std::env::var_os("VENEER_REQUIRE_BROWSER").is_some() {
        panic!("VENEER_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing");
    }
    if !present {
        eprintln!(
            "web_app: SKIPPED — install Debian's chromium and chromium-driver to run the browser test"
        );
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scientist_humanizes_inspects_exports_and_cancels_in_the_browser() {
    if !browser_available() {
        return;
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start_listening(&listen, &fast(&["--stage-delay-ms", "700"]));
    let base = format!("http://{}", server.addr);
    let mut b = Browser::start(&base).await;
    // Statuses the flow provokes on purpose; Chromium logs each failed fetch on the console.
    let mut expected_statuses: Vec<u16> = Vec::new();

    // ---- the page itself: headers a browser enforces ----
    let page = server.req().path("/jobs").key(None).send();
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let etag = page.header("etag").expect("an ETag").to_string();
    let again = server
        .req()
        .path("/jobs")
        .key(None)
        .header("If-None-Match", &etag)
        .send();
    assert_eq!(again.status, 304);
    let js = server.req().path("/assets/main.js").key(None).send();
    assert!(
        js.header("content-type")
            .unwrap_or("")
            .starts_with("text/javascript")
    );
    assert_eq!(
        server.req().path("/assets/nope.js").key(None).send().status,
        404
    );

    // ---- sign-in: a wrong key is refused with a message ----
    b.goto("/").await;
    b.until(
        "location.pathname === '/signin'",
        Duration::from_secs(10),
        "/ sends a stranger to sign-in",
    )
    .await;
    b.assert_labelled("sign-in").await;
    b.submit_key("vnr_this_key_does_not_exist_0000000000").await;
    expected_statuses.push(401);
    let refused = b.text("#key-error").await;
    assert!(refused.contains("refused"), "{refused}");
    b.submit_key(&server.key).await;
    b.until(
        "location.pathname === '/variants'",
        Duration::from_secs(10),
        "signed in",
    )
    .await;
    let stored: Value = b
        .js(
            "return Object.keys(sessionStorage).map(k => sessionStorage.getItem(k))",
            vec![],
        )
        .await;
    assert!(
        stored.to_string().contains(&server.key),
        "the key is kept in sessionStorage"
    );
    assert!(
        !b.client
            .current_url()
            .await
            .expect("url")
            .as_str()
            .contains("vnr_")
    );

    // ---- register: a pasted sequence is cleaned, a bad one shows the API's reason ----
    let pasted_vh: String = VH
        .to_lowercase()
        .as_bytes()
        .chunks(10)
        .enumerate()
        .map(|(i, c)| format!("{} {}\n", i * 10 + 1, String::from_utf8_lossy(c)))
        .collect();
    b.register("AntiCD28", &pasted_vh, VL).await;
    let registered = b.text("#register-result").await;
    assert!(registered.contains("Registered AntiCD28"), "{registered}");
    let variants = server.get("/v1/variants").json;
    let anticd28 = variants["data"][0].clone();
    assert_eq!(anticd28["name"], "AntiCD28");
    assert_eq!(
        anticd28["vh"], VH,
        "the pasted VH was cleaned as the API cleans it"
    );
    let anticd28_id = id_of(&anticd28);

    let bad_vh = format!("{}*{}", &VH[..40], &VH[40..]);
    let api_reason = server
        .post(
            "/v1/variants",
            &json!({"name": "bad", "vh": bad_vh, "vl": VL}),
        )
        .problem(422, "invalid_sequence")["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    b.register("bad", &bad_vh, VL).await;
    expected_statuses.push(422);
    let shown = b.text("#vh-error").await;
    assert_eq!(shown, api_reason, "the 422 reason is shown beside VH");
    assert_eq!(
        b.js(
            "return document.querySelector('#vl-error').textContent",
            vec![]
        )
        .await,
        ""
    );

    // A name that is markup stays text everywhere it is listed.
    b.register(XSS_NAME, VH, VL).await;
    b.until(
        &format!("[...document.querySelectorAll('#variants td.name')].some(td => td.textContent === {XSS_NAME:?})"),
        Duration::from_secs(10),
        "the markup-named variant is listed as text",
    )
    .await;
    let xss_id = id_of(&server.get("/v1/variants").json["data"][0]);
    b.assert_labelled("variants").await;
    let no_img = "document.querySelectorAll('main img').length === 0 && !window.__xss";
    assert_eq!(b.js(&format!("return {no_img}"), vec![]).await, json!(true));

    // ---- a nanobody (VH alone) and an scFv (one sequence the server splits) ----
    let vhh = "EVQLVESGGGLVQPGGSLRLSCAASGLTLDDYAMSWVRQAPGKGLEWVSAWSYNGGSTYYAESMKGRFTISRDNAKNTLYLQMNSLKSEDTAVYYCNADSRIGVYAYWGQGTLVTVSS";
    b.register("Nanobody1", vhh, "").await;
    b.until(
        "document.querySelector('#register-result')?.textContent.includes('Registered Nanobody1 (single domain)')",
        Duration::from_secs(10),
        "the nanobody is registered as a single domain",
    )
    .await;
    let nanobody = server.get("/v1/variants").json["data"][0].clone();
    assert_eq!(nanobody["vh"], vhh);
    assert!(nanobody["vl"].is_null(), "{nanobody}");
    b.fill("#variant-name", "CD28scFv").await;
    b.fill("#variant-scfv", &format!("{VH}GGGGSGGGGSGGGGS{VL}"))
        .await;
    b.click("#register").await;
    let shown = b
        .until(
            "document.querySelector('#register-result')?.textContent.includes('Registered CD28scFv') && document.querySelector('#register-result').textContent",
            Duration::from_secs(10),
            "the scFv is registered with its split",
        )
        .await;
    let vh_end = VH.len();
    let vl_start = vh_end + 15 + 1;
    let vl_end = vh_end + 15 + VL.len();
    let expected_split = format!(
        "kappa light chain; scFv VH-VL, VH 1–{vh_end}, VL {vl_start}–{vl_end}, linker GGGGSGGGGSGGGGS"
    );
    assert!(
        shown.as_str().is_some_and(|t| t.contains(&expected_split)),
        "{shown} lacks {expected_split}"
    );
    let scfv = server.get("/v1/variants").json["data"][0].clone();
    assert_eq!(
        (scfv["vh"].as_str(), scfv["vl"].as_str()),
        (Some(VH), Some(VL))
    );
    b.until(
        "[...document.querySelectorAll('#variants tbody tr')].some(r => r.textContent.includes('single domain'))",
        Duration::from_secs(10),
        "the variants table lists the nanobody as a single domain",
    )
    .await;
    b.js(
        "document.querySelector('#variants')?.scrollIntoView(); return true",
        vec![],
    )
    .await;
    save_screenshot(&b, "variants").await;

    // ---- import: good records in, bad ones listed with their reasons ----
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lab.csv");
    std::fs::write(
        &file,
        format!("name,vh,vl\nImported1,{VH},{VL}\nBroken,{VH}Z9!,{VL}\n"),
    )
    .expect("write csv");
    let input = b
        .client
        .find(Locator::Css("#import-file"))
        .await
        .expect("file input");
    input
        .send_keys(&file.display().to_string())
        .await
        .expect("choose file");
    b.click("#import").await;
    b.until(
        "document.querySelectorAll('#import-records tbody tr').length === 2",
        Duration::from_secs(10),
        "both records reported",
    )
    .await;
    let outcomes = b
        .js("return [...document.querySelectorAll('#import-records tbody tr')].map(r => [r.dataset.status, r.textContent])", vec![])
        .await;
    assert_eq!(outcomes[0][0], "created", "{outcomes}");
    assert_eq!(outcomes[1][0], "failed", "{outcomes}");
    assert!(
        outcomes[1][1].as_str().unwrap_or("").contains("VH:"),
        "{outcomes}"
    );

    // Delete asks for a second click, then the variant is gone from the list and the API.
    let imported = b
        .until(
            "[...document.querySelectorAll('#variants tbody tr')].find(r => r.querySelector('td.name').textContent === 'Imported1')?.dataset.id",
            Duration::from_secs(10),
            "the imported variant is listed",
        )
        .await;
    let imported = imported.as_str().expect("id").to_string();
    let delete = format!("#variants tr[data-id='{imported}'] button.danger");
    b.click(&delete).await;
    assert_eq!(b.text(&delete).await, "Confirm delete");
    b.click(&delete).await;
    b.until(
        &format!("!document.querySelector(\"#variants tr[data-id='{imported}']\")"),
        Duration::from_secs(10),
        "the deleted variant leaves the list",
    )
    .await;
    assert_eq!(server.get(&format!("/v1/variants/{imported}")).status, 404);

    // ---- humanize: a double click submits once and charges once ----
    let before = server.ledger().len();
    b.goto(&format!("/humanize?variant={anticd28_id}")).await;
    b.until(
        "document.querySelector('#submit-humanizations')",
        Duration::from_secs(10),
        "humanize screen",
    )
    .await;
    b.until(
        &format!("document.getElementById('pick-{anticd28_id}')?.checked"),
        Duration::from_secs(10),
        "the variant from the URL is selected",
    )
    .await;
    b.js("const b = document.querySelector('#submit-humanizations'); b.click(); b.click(); return true", vec![])
        .await;
    let row = "#submitted tbody tr";
    b.until(
        &format!("document.querySelector('{row}')"),
        Duration::from_secs(10),
        "the job is listed",
    )
    .await;
    b.until(
        &format!("document.querySelector('{row}').dataset.status === 'completed'"),
        Duration::from_secs(60),
        "the job completes, followed live",
    )
    .await;
    b.assert_labelled("humanize").await;
    let jobs = server.get("/v1/humanizations").json;
    assert_eq!(
        jobs["data"].as_array().map(Vec::len),
        Some(1),
        "one job for a double click"
    );
    assert_eq!(
        server.ledger().len(),
        before + 1,
        "one debit for a double click"
    );
    let job_id = id_of(&jobs["data"][0]);

    // ---- the job page: the alignment is exactly what `veneer humanize` prints ----
    b.goto(&format!("/jobs/{job_id}")).await;
    b.until(
        "document.querySelector('#summary')",
        Duration::from_secs(20),
        "the job page",
    )
    .await;
    b.assert_labelled("job").await;
    // The strategy tabs answer the arrow keys.
    b.click("#tab-cdr_grafting").await;
    let tab = b
        .client
        .find(Locator::Css("#tab-cdr_grafting"))
        .await
        .expect("tab");
    tab.send_keys("\u{E014}").await.expect("ArrowRight");
    b.until(
        "!document.querySelector('#panel-cdr_grafting_vernier').hidden && document.activeElement.id === 'tab-cdr_grafting_vernier'",
        Duration::from_secs(5),
        "ArrowRight moves to the next strategy",
    )
    .await;
    let offline = humanize_offline();
    let results = offline["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for r in results {
        let strategy = r["strategy"].as_str().expect("strategy");
        b.click(&format!("#tab-{strategy}")).await;
        b.until(
            &format!("!document.querySelector('#panel-{strategy}').hidden"),
            Duration::from_secs(5),
            "the strategy's panel shows",
        )
        .await;
        let shown = b
            .js(
                "const p = document.getElementById('panel-' + arguments[0]);
                 return Object.fromEntries([...p.querySelectorAll('.alignment')].map(f => [f.dataset.chain,
                   [...f.querySelectorAll('[data-row=humanized] .res')].map(c => c.textContent).join('').replaceAll('-', '')]));",
                vec![json!(strategy)],
            )
            .await;
        assert_eq!(shown["VH"], r["humanized_vh"], "{strategy} VH");
        assert_eq!(shown["VL"], r["humanized_vl"], "{strategy} VL");
        for chain in ["vh", "vl"] {
            let count = b
                .text(&format!(
                    "#summary tr[data-field=mutations_{chain}] td[data-strategy={strategy}]"
                ))
                .await;
            assert_eq!(
                count,
                r["mutations"][chain].to_string(),
                "{strategy} {chain} mutations"
            );
        }
        let marked = b
            .js(
                "return document.querySelectorAll('#panel-' + arguments[0] + ' [data-row=humanized] .mut').length",
                vec![json!(strategy)],
            )
            .await;
        let listed = r["mutation_list"]["vh"].as_array().map_or(0, Vec::len)
            + r["mutation_list"]["vl"].as_array().map_or(0, Vec::len);
        assert_eq!(
            marked,
            json!(listed),
            "{strategy}: every listed mutation is marked"
        );
        b.until(
            &format!("document.querySelectorAll('#panel-{strategy} .plot canvas').length === 2"),
            Duration::from_secs(10),
            "both humanness plots are drawn",
        )
        .await;
    }
    // The CDRs are shaded and the Vernier positions marked on the parental row: as many as the
    // parental Kabat numbering has in the Kabat CDRs (H31-35, H50-65, H95-102) and at the
    // Vernier numbers of Foote & Winter.
    let numbers: Vec<u32> = offline["parental"]["numbering"]["vh"]
        .as_array()
        .expect("parental numbering")
        .iter()
        .filter_map(|p| p[0].as_str())
        .map(|label| {
            label[1..]
                .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                .parse()
                .expect("a Kabat number")
        })
        .collect();
    let in_cdr = numbers
        .iter()
        .filter(|&&n| (31..=35).contains(&n) || (50..=65).contains(&n) || (95..=102).contains(&n))
        .count();
    let vernier_numbers = [
        2, 27, 28, 29, 30, 47, 48, 49, 67, 69, 71, 73, 78, 93, 94, 103,
    ];
    let at_vernier = numbers
        .iter()
        .filter(|n| vernier_numbers.contains(n))
        .count();
    let shaded = b
        .js("return document.querySelectorAll('#panel-sapiens [data-chain=VH] [data-row=parental] .res.cdr').length", vec![])
        .await;
    assert_eq!(shaded, json!(in_cdr), "CDR residues shaded");
    let vernier = b
        .js("return document.querySelectorAll('#panel-sapiens [data-chain=VH] [data-row=parental] .res.vernier').length", vec![])
        .await;
    assert_eq!(vernier, json!(at_vernier), "Vernier positions marked");

    // The exported FASTA carries exactly the API's designs.
    b.click("#tab-cdr_grafting").await;
    let fasta = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('#export-fasta').href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .expect("read the export");
    let api_job = server.get(&format!("/v1/humanizations/{job_id}")).json;
    let mut expected_fasta = String::new();
    for r in api_job["results"].as_array().expect("results") {
        for (chain, field) in [("VH", "humanized_vh"), ("VL", "humanized_vl")] {
            let seq = r[field].as_str().expect("sequence");
            expected_fasta.push_str(&format!(
                ">AntiCD28_{} {chain}\n",
                r["strategy"].as_str().unwrap_or("")
            ));
            for line in seq.as_bytes().chunks(60) {
                expected_fasta.push_str(&String::from_utf8_lossy(line));
                expected_fasta.push('\n');
            }
        }
    }
    assert_eq!(fasta, json!(expected_fasta));

    // A tall window, so the picture shows the summary, an alignment and the plots together.
    b.client.set_window_size(1280, 2300).await.expect("resize");
    b.click("#tab-cdr_grafting_vernier").await;
    b.until(
        "document.querySelectorAll('#panel-cdr_grafting_vernier .plot canvas').length === 2",
        Duration::from_secs(10),
        "plots drawn",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    save_screenshot(&b, "job").await;
    b.client.set_window_size(1280, 1000).await.expect("resize");

    // ---- cancel a running job from the page; the ledger shows the refund ----
    let cancel_id = b.submit_until_running(&xss_id).await;
    assert_eq!(b.js(&format!("return {no_img}"), vec![]).await, json!(true));
    let newest = NEWEST;
    assert_eq!(
        b.js(
            &format!("return document.querySelector('{newest}').children[0].textContent"),
            vec![]
        )
        .await,
        json!(XSS_NAME)
    );
    b.click(&format!("{newest} button.cancel")).await;
    let note = b.text(&format!("{newest} td.note")).await;
    assert!(note.contains("1 credit refunded"), "{note}");
    b.until(
        &format!("document.querySelector('{newest}').dataset.status === 'canceled'"),
        Duration::from_secs(10),
        "the row shows canceled",
    )
    .await;
    b.goto("/organization").await;
    b.until(
        &format!("[...document.querySelectorAll('#ledger tr[data-reason=refund] a')].some(a => a.getAttribute('href') === '/jobs/{cancel_id}')"),
        Duration::from_secs(10),
        "the ledger lists the refund of the canceled job",
    )
    .await;
    b.assert_labelled("organization").await;
    let org = server.get("/v1/organization").json;
    assert_eq!(b.text("#balance").await, org["credit_balance"].to_string());
    // The canceled job's page names its variant, as text.
    b.goto(&format!("/jobs/{cancel_id}")).await;
    let title = b.text("main h1").await;
    assert!(title.ends_with(XSS_NAME), "{title}");
    assert_eq!(b.js(&format!("return {no_img}"), vec![]).await, json!(true));

    // ---- the server goes away mid-poll and comes back: the page says so and carries on ----
    b.submit_until_running(&anticd28_id).await;
    expected_statuses.push(503);
    assert!(server.terminate().success());
    let banner = b
        .until(
            "document.querySelector('#banner:not([hidden])')?.textContent",
            Duration::from_secs(20),
            "the page says the server is gone",
        )
        .await;
    let banner = banner.as_str().unwrap_or_default().to_string();
    assert!(
        banner.contains("Lost contact") || banner.contains("unavailable"),
        "{banner}"
    );
    server.spawn();
    b.until(
        &format!("document.querySelector('{newest}')?.dataset.status === 'completed'"),
        Duration::from_secs(60),
        "the job recovered by the restarted server completes on the page",
    )
    .await;
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#submitted tbody tr').length",
            vec![]
        )
        .await,
        json!(3),
        "no submitted job dropped out of view"
    );

    // ---- out of credits: 402 with cost and balance; then the key is revoked ----
    let (_, poor_key) = server.new_org("Poor lab", 0, None);
    b.click("#signout").await;
    b.until(
        "location.pathname === '/signin'",
        Duration::from_secs(5),
        "signed out",
    )
    .await;
    assert_eq!(
        b.js("return sessionStorage.length", vec![]).await,
        json!(0),
        "sign-out forgets the key"
    );
    b.submit_key(&poor_key).await;
    b.until(
        "location.pathname === '/variants'",
        Duration::from_secs(10),
        "signed in as the poor lab",
    )
    .await;
    b.register("Unpaid", VH, VL).await;
    b.text("#register-result").await;
    b.goto("/humanize").await;
    b.click("#variants tbody input[type=checkbox]").await;
    b.click("#submit-humanizations").await;
    expected_statuses.push(402);
    let refusal = b.text("#submit-result .notice.error").await;
    assert!(
        refusal.contains("costs 1 credit") && refusal.contains("has 0"),
        "{refusal}"
    );

    let keys = crate::common::admin(&server.db(), &["orgs", "list"]).1;
    assert!(keys.contains("Poor lab"));
    let org_id = server
        .as_key(&poor_key, "GET", "/v1/organization", None)
        .json["id"]
        .as_str()
        .expect("org id")
        .to_string();
    let listed = crate::common::admin(&server.db(), &["keys", "list", "--org", &org_id]).1;
    let key_id = listed
        .split_whitespace()
        .find(|w| w.len() == 36 && w.contains('-'))
        .expect("a key id")
        .to_string();
    assert!(crate::common::admin(&server.db(), &["keys", "revoke", &key_id]).0);
    b.goto("/jobs").await;
    expected_statuses.push(401);
    b.until(
        "location.pathname === '/signin'",
        Duration::from_secs(10),
        "a revoked key is sent to sign-in",
    )
    .await;
    let said = b.text("#key-error").await;
    assert!(said.contains("revoked"), "{said}");

    // ---- narrow screens: the job page reflows, the alignment scrolls instead ----
    b.client.set_window_size(400, 900).await.expect("resize");
    b.submit_key(&server.key).await;
    b.until(
        "location.pathname !== '/signin'",
        Duration::from_secs(10),
        "signed in again",
    )
    .await;
    b.goto(&format!("/jobs/{job_id}")).await;
    b.until(
        "document.querySelector('#summary')",
        Duration::from_secs(20),
        "job page, narrow",
    )
    .await;
    let overflow = b
        .js(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await;
    assert_eq!(
        overflow,
        json!(true),
        "no sideways scrolling of the whole page at 400 px"
    );

    // ---- the console: no script errors at all, and no failed request but those provoked ----
    b.collect_console().await;
    let unexpected: Vec<&Value> = b
        .console
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let message = e["message"].as_str().unwrap_or("");
            let provoked = e["source"] == "network"
                && expected_statuses
                    .iter()
                    .any(|s| message.contains(&format!("status of {s}")));
            // Requests to the stopped server fail by design while it restarts.
            let restart = e["source"] == "network" && message.contains("ERR_CONNECTION_REFUSED");
            !(provoked || restart)
        })
        .collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    // The log is really read: the refused sign-in's 401 is in it.
    assert!(
        b.console.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or("")
            .contains("status of 401")),
        "the browser log was not collected: {:#?}",
        b.console
    );
    b.client.close().await.expect("close the browser");
}

/// Rate limited: the page says so, waits as `Retry-After` says, and then shows the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_page_says_so_and_retries() {
    if !browser_available() {
        return;
    }
    let server = Server::start(&["--read-rate", "1", "--read-burst", "2"]);
    let mut b = Browser::start(&format!("http://{}", server.addr)).await;
    b.goto("/signin").await;
    b.submit_key(&server.key).await;
    b.until(
        "location.pathname === '/variants'",
        Duration::from_secs(15),
        "signed in",
    )
    .await;
    // Each screen costs a few reads; a burst of 2 at 1/s runs out at once.
    b.goto("/humanize").await;
    let banner = b
        .until(
            "document.querySelector('#banner:not([hidden])')?.textContent",
            Duration::from_secs(15),
            "the page says it is rate limited",
        )
        .await;
    assert!(
        banner
            .as_str()
            .unwrap_or("")
            .contains("Too many requests; retrying in"),
        "{banner}"
    );
    b.until(
        "document.querySelector('#submit-humanizations')",
        Duration::from_secs(30),
        "the screen appears once the retries get through",
    )
    .await;
    b.assert_labelled("humanize").await;
    b.goto("/jobs").await;
    b.until(
        "document.querySelector('#status-filter')",
        Duration::from_secs(30),
        "jobs screen",
    )
    .await;
    b.assert_labelled("jobs").await;
    b.collect_console().await;
    let unexpected: Vec<&Value> = b
        .console
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            !(e["source"] == "network"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("status of 429"))
        })
        .collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    b.client.close().await.expect("close the browser");
}
