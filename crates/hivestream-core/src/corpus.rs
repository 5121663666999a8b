//! A seedable generator of realistic events: page views, engagement, clicks
//! and video plays from a pool of users with sessions, segment lists, and
//! nested `properties` with URLs, titles, user agents and geo data. About
//! 700 bytes an event, with the variety of real traffic (so compression is
//! neither trivial nor hopeless).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const NAMES: &[(&str, u32)] = &[
    ("Pageview", 50),
    ("PageviewEngagement", 25),
    ("Click", 10),
    ("SlotViewable", 8),
    ("VideoPlay", 4),
    ("FormSubmission", 2),
    ("AffiliateLinkClick", 1),
];
const DOMAINS: &[&str] = &[
    "news.example.com",
    "sport.example.co.uk",
    "recipes.example.org",
    "tech.example.io",
    "travel.example.fr",
];
const SECTIONS: &[&str] = &[
    "politics", "football", "dinner", "gadgets", "europe", "markets", "health", "culture",
    "opinion",
];
const WORDS: &[&str] = &[
    "the", "new", "best", "how", "why", "season", "final", "election", "recipe", "review", "guide",
    "market", "week", "after", "city", "record", "plan", "winter", "summer", "launch", "league",
    "vote", "price", "climate", "team",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
const GEO: &[(&str, &str)] = &[
    ("GB", "London"),
    ("US", "New York"),
    ("FR", "Paris"),
    ("DE", "Berlin"),
    ("US", "Austin"),
    ("GB", "Leeds"),
];

/// Generates events from a seed.
pub struct Corpus {
    rng: StdRng,
    users: Vec<(Uuid, Uuid)>,
}

impl Corpus {
    pub fn new(seed: u64, users: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let users = (0..users.max(1))
            .map(|_| (Uuid::from_u128(rng.random()), Uuid::from_u128(rng.random())))
            .collect();
        Self { rng, users }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn title(&mut self) -> String {
        let n = self.rng.random_range(4..11);
        let words: Vec<&str> = (0..n).map(|_| *self.pick(WORDS)).collect();
        let mut t = words.join(" ");
        t[..1].make_ascii_uppercase();
        t
    }

    fn name(&mut self) -> &'static str {
        let total: u32 = NAMES.iter().map(|n| n.1).sum();
        let mut x = self.rng.random_range(0..total);
        for (name, w) in NAMES {
            if x < *w {
                return name;
            }
            x -= w;
        }
        NAMES[0].0
    }

    /// One `POST /v2.0/identify` body: a user with a hashed e-mail alias
    /// (priority 0) and a device id (priority 1).
    pub fn identify(&mut self) -> String {
        let (user, _) = self.users[self.rng.random_range(0..self.users.len())];
        let email: u128 = self.rng.random();
        let device = Uuid::from_u128(self.rng.random());
        serde_json::json!({
            "user_id": user,
            "aliases": [
                { "priority": 0, "tag": "email_sha256", "id": format!("{email:032x}{email:032x}") },
                { "priority": 1, "tag": "device_id", "id": device },
            ]
        })
        .to_string()
    }

    /// One `POST /v2/cohorts` body; `i` makes the name unique.
    pub fn cohort(&mut self, i: usize) -> String {
        let section = *self.pick(SECTIONS);
        let title = self.title();
        let tags: Vec<&str> = (0..self.rng.random_range(1..4))
            .map(|_| *self.pick(SECTIONS))
            .collect();
        serde_json::json!({
            "name": format!("{title} readers {i}"),
            "description": format!("Users who read {section} articles about {title} in the last 30 days"),
            "tags": tags,
            "segment_type": "real_time",
            "query": { "section": section, "min_views": self.rng.random_range(1..20), "window_days": 30 },
        })
        .to_string()
    }

    /// One event as a JSON object (no newline).
    pub fn event(&mut self) -> String {
        let (user, session) = self.users[self.rng.random_range(0..self.users.len())];
        let view = Uuid::from_u128(self.rng.random());
        let name = self.name();
        let nseg = self.rng.random_range(3..30);
        let segments: Vec<u32> = (0..nseg)
            .map(|_| self.rng.random_range(1..120_000))
            .collect();
        let ncoh = self.rng.random_range(0..4);
        let cohorts: Vec<String> = (0..ncoh)
            .map(|_| format!("c{}", self.rng.random_range(1..5_000)))
            .collect();
        let domain = *self.pick(DOMAINS);
        let section = *self.pick(SECTIONS);
        let title = self.title();
        let slug = title.to_lowercase().replace(' ', "-");
        let article_id = self.rng.random_range(100_000..9_999_999u32);
        let agent = *self.pick(AGENTS);
        let (country, city) = *self.pick(GEO);
        let engaged = self.rng.random_range(0..600);
        let scroll = self.rng.random_range(0..100);
        let referrer = if self.rng.random_bool(0.5) {
            format!("https://{domain}/{section}")
        } else {
            "https://www.google.com/".into()
        };
        serde_json::json!({
            "name": name,
            "user_id": user,
            "session_id": session,
            "view_id": view,
            "segments": segments,
            "cohorts": cohorts,
            "properties": {
                "client": {
                    "url": format!("https://{domain}/{section}/{article_id}/{slug}"),
                    "domain": domain,
                    "referrer": referrer,
                    "title": title,
                    "type": "web",
                    "user_agent": agent,
                },
                "article": { "id": article_id.to_string(), "section": section, "authors": [format!("author{}", article_id % 97)] },
                "engaged_time": engaged,
                "scroll_depth": scroll,
                "geo_info": { "country": country, "city": city },
            }
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_corpus_is_reproducible_and_realistic() {
        let a: Vec<String> = (0..50)
            .map({
                let mut c = Corpus::new(7, 100);
                move |_| c.event()
            })
            .collect();
        let b: Vec<String> = (0..50)
            .map({
                let mut c = Corpus::new(7, 100);
                move |_| c.event()
            })
            .collect();
        assert_eq!(a, b);
        let mean = a.iter().map(String::len).sum::<usize>() / a.len();
        assert!((500..1000).contains(&mean), "mean event size {mean}");
        for e in &a {
            crate::collect::event::parse_event(e.as_bytes()).expect("generated events are valid");
        }
    }
}
