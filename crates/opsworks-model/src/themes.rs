//! Hostname themes and their word lists, the hostname rule, and [`suggest`], which picks the next
//! unused hostname of a theme.

/// The hostname themes of the API (`HostnameTheme`), `Layer_Dependent` being the default.
pub const THEME_NAMES: [&str; 12] = [
    "Baked_Goods",
    "Clouds",
    "Europe_Cities",
    "Fruits",
    "Greek_Deities_and_Titans",
    "Layer_Dependent",
    "Legendary_creatures_from_Japan",
    "Planets_and_Moons",
    "Roman_Deities",
    "Scottish_Islands",
    "US_Cities",
    "Wild_Cats",
];

/// The theme that names instances after their layer: `<shortname><n>`.
pub const LAYER_DEPENDENT: &str = "Layer_Dependent";

/// The longest hostname of a Linux instance.
pub const MAX_HOSTNAME_LEN: usize = 63;

/// The longest hostname of a Windows instance (NetBIOS).
pub const MAX_WINDOWS_HOSTNAME_LEN: usize = 15;

#[rustfmt::skip]
const BAKED_GOODS: &[&str] = &[
    "bagel", "baguette", "baklava", "biscotti", "brioche", "brownie", "bun", "cannoli", "challah",
    "churro", "ciabatta", "cookie", "croissant", "crumpet", "cupcake", "danish", "donut", "eclair",
    "focaccia", "fritter", "gingerbread", "macaron", "madeleine", "muffin", "pretzel", "scone",
    "shortbread", "strudel", "tart", "waffle",
];

#[rustfmt::skip]
const CLOUDS: &[&str] = &[
    "altocumulus", "altostratus", "arcus", "asperitas", "castellanus", "cirrocumulus",
    "cirrostratus", "cirrus", "cumulonimbus", "cumulus", "fractus", "incus", "lenticular",
    "mammatus", "nacreous", "nimbostratus", "noctilucent", "pannus", "pileus", "stratocumulus",
    "stratus", "undulatus", "velum", "virga",
];

#[rustfmt::skip]
const EUROPE_CITIES: &[&str] = &[
    "amsterdam", "athens", "barcelona", "berlin", "bratislava", "brussels", "bucharest", "budapest",
    "copenhagen", "dublin", "edinburgh", "helsinki", "lisbon", "ljubljana", "london", "luxembourg",
    "madrid", "milan", "munich", "oslo", "paris", "prague", "riga", "rome", "sofia", "stockholm",
    "tallinn", "vienna", "vilnius", "warsaw", "zagreb", "zurich",
];

#[rustfmt::skip]
const FRUITS: &[&str] = &[
    "apple", "apricot", "banana", "blackberry", "blueberry", "cherry", "coconut", "cranberry",
    "date", "fig", "grape", "grapefruit", "guava", "kiwi", "lemon", "lime", "lychee", "mango",
    "melon", "nectarine", "orange", "papaya", "peach", "pear", "pineapple", "plum", "pomegranate",
    "raspberry", "strawberry", "tangerine",
];

#[rustfmt::skip]
const GREEK_DEITIES_AND_TITANS: &[&str] = &[
    "aphrodite", "apollo", "ares", "artemis", "athena", "atlas", "coeus", "crius", "cronus",
    "demeter", "dionysus", "eos", "gaia", "hades", "hebe", "helios", "hephaestus", "hera", "hermes",
    "hestia", "hyperion", "iapetus", "mnemosyne", "nyx", "oceanus", "persephone", "phoebe",
    "poseidon", "rhea", "selene", "tethys", "theia", "themis", "zeus",
];

#[rustfmt::skip]
const LEGENDARY_CREATURES_FROM_JAPAN: &[&str] = &[
    "akaname", "amabie", "bakeneko", "baku", "gashadokuro", "inugami", "jorogumo", "kamaitachi",
    "kappa", "kirin", "kitsune", "kodama", "komainu", "mujina", "nekomata", "nue", "nurikabe",
    "oni", "rokurokubi", "tanuki", "tengu", "tsuchinoko", "umibozu", "yamabiko", "yatagarasu",
    "yuki-onna",
];

#[rustfmt::skip]
const PLANETS_AND_MOONS: &[&str] = &[
    "mercury", "venus", "earth", "mars", "jupiter", "saturn", "uranus", "neptune", "pluto", "moon",
    "phobos", "deimos", "io", "europa", "ganymede", "callisto", "titan", "rhea", "iapetus", "dione",
    "tethys", "enceladus", "mimas", "miranda", "ariel", "umbriel", "titania", "oberon", "triton",
    "charon",
];

#[rustfmt::skip]
const ROMAN_DEITIES: &[&str] = &[
    "apollo", "aurora", "bacchus", "ceres", "cupid", "diana", "faunus", "flora", "fortuna", "janus",
    "juno", "jupiter", "juventas", "mars", "mercury", "minerva", "neptune", "ops", "pluto",
    "proserpina", "saturn", "sol", "terra", "venus", "vesta", "victoria", "vulcan",
];

#[rustfmt::skip]
const SCOTTISH_ISLANDS: &[&str] = &[
    "arran", "barra", "benbecula", "bute", "canna", "coll", "colonsay", "eigg", "eriskay", "harris",
    "hoy", "iona", "islay", "jura", "lewis", "lismore", "muck", "mull", "raasay", "rum", "sanday",
    "scalpay", "shapinsay", "skye", "staffa", "stronsay", "tiree", "ulva", "unst", "westray",
    "yell",
];

#[rustfmt::skip]
const US_CITIES: &[&str] = &[
    "atlanta", "austin", "baltimore", "boston", "charlotte", "chicago", "cleveland", "columbus",
    "dallas", "denver", "detroit", "houston", "indianapolis", "jacksonville", "memphis", "miami",
    "milwaukee", "minneapolis", "nashville", "oakland", "omaha", "orlando", "philadelphia",
    "phoenix", "pittsburgh", "portland", "raleigh", "sacramento", "seattle", "tucson",
];

#[rustfmt::skip]
const WILD_CATS: &[&str] = &[
    "bobcat", "caracal", "cheetah", "clouded-leopard", "cougar", "fishing-cat", "jaguar",
    "jaguarundi", "kodkod", "leopard", "lion", "lynx", "manul", "margay", "ocelot", "oncilla",
    "puma", "sand-cat", "serval", "snow-leopard", "tiger", "wildcat",
];

/// Whether `name` is a hostname theme of the API.
pub fn is_theme(name: &str) -> bool {
    THEME_NAMES.contains(&name)
}

/// The words of a theme, in the order they are handed out; empty for `Layer_Dependent` (whose
/// names come from the layer) and for names that are not themes.
pub fn words(theme: &str) -> &'static [&'static str] {
    match theme {
        "Baked_Goods" => BAKED_GOODS,
        "Clouds" => CLOUDS,
        "Europe_Cities" => EUROPE_CITIES,
        "Fruits" => FRUITS,
        "Greek_Deities_and_Titans" => GREEK_DEITIES_AND_TITANS,
        "Legendary_creatures_from_Japan" => LEGENDARY_CREATURES_FROM_JAPAN,
        "Planets_and_Moons" => PLANETS_AND_MOONS,
        "Roman_Deities" => ROMAN_DEITIES,
        "Scottish_Islands" => SCOTTISH_ISLANDS,
        "US_Cities" => US_CITIES,
        "Wild_Cats" => WILD_CATS,
        _ => &[],
    }
}

/// Whether `name` is a valid hostname of at most `max` characters: lower-case letters, digits and
/// `-`, neither first nor last (`^(?!-)[a-z0-9-]{1,63}(?<!-)$`, the rule `aws opsworks register`
/// applies).
pub fn is_valid_hostname(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The next unused hostname of `theme` for an instance of the layer `layer_shortname`, given the
/// hostnames already `taken` in the stack (compared without regard to case).
///
/// `Layer_Dependent` gives `<shortname><n>` with the lowest free `n` from 1; the short name is
/// made hostname-safe first (`_` and `.` become `-`). Other themes give the first unused word in
/// list order and, once every word is in use, `<word>2`, `<word>3`, ... in the same order.
/// `None` when `theme` is not a theme.
pub fn suggest(theme: &str, layer_shortname: &str, taken: &[&str]) -> Option<String> {
    suggest_within(theme, layer_shortname, taken, MAX_HOSTNAME_LEN)
}

/// [`suggest`] for hostnames of at most `max` characters (Windows instances take 15): longer
/// short names are cut, longer words are skipped. `None` also when `max` is too small for any.
pub fn suggest_within(
    theme: &str,
    layer_shortname: &str,
    taken: &[&str],
    max: usize,
) -> Option<String> {
    let is_taken = |name: &str| taken.iter().any(|t| t.eq_ignore_ascii_case(name));
    let max = max.min(MAX_HOSTNAME_LEN);
    if max < 2 {
        return None;
    }
    if theme == LAYER_DEPENDENT {
        let base = hostname_base(layer_shortname);
        return (1u64..)
            .map(|n| numbered(&base, n, max))
            .find(|name| !is_taken(name));
    }
    let words: Vec<&str> = words(theme)
        .iter()
        .copied()
        .filter(|w| w.len() < max)
        .collect();
    if words.is_empty() {
        return None;
    }
    // The taken names are finite, so some round has a free word.
    (1u64..)
        .flat_map(|round| {
            words.iter().map(move |w| {
                if round == 1 {
                    w.to_string()
                } else {
                    numbered(w, round, max)
                }
            })
        })
        .find(|name| !is_taken(name))
}

/// `<base><n>`, the base shortened so the whole stays within `max` characters (and never ends
/// in `-` before the digits, which would read as a negative number).
fn numbered(base: &str, n: u64, max: usize) -> String {
    let digits = n.to_string();
    let keep = max.saturating_sub(digits.len()).min(base.len());
    format!("{}{digits}", base[..keep].trim_end_matches('-'))
}

/// A short name made hostname-safe: lower case, runs of other characters turned into one `-`, no
/// leading or trailing `-`; `host` when nothing is left.
fn hostname_base(shortname: &str) -> String {
    let mut out = String::new();
    for c in shortname.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    // The digits that follow keep a trailing '-' from ending the name, but `a-1` reads badly.
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "host".into()
    } else {
        trimmed.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_theme_has_enough_valid_distinct_words() {
        for theme in THEME_NAMES {
            assert!(is_theme(theme));
            let w = words(theme);
            if theme == LAYER_DEPENDENT {
                assert!(w.is_empty());
                continue;
            }
            assert!(w.len() >= 20, "{theme} has {} words", w.len());
            for word in w {
                assert!(is_valid_hostname(word, MAX_HOSTNAME_LEN), "{theme}: {word}");
            }
            let mut sorted = w.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), w.len(), "{theme} repeats a word");
        }
        assert!(!is_theme("Cheeses"));
        assert!(words("Cheeses").is_empty());
    }

    #[test]
    fn layer_dependent_takes_the_lowest_free_number() {
        assert_eq!(
            suggest(LAYER_DEPENDENT, "php-app", &[]).as_deref(),
            Some("php-app1")
        );
        assert_eq!(
            suggest(LAYER_DEPENDENT, "php-app", &["php-app1", "php-app2"]).as_deref(),
            Some("php-app3")
        );
        // A gap left by a deleted instance is filled first.
        assert_eq!(
            suggest(LAYER_DEPENDENT, "lb", &["lb1", "lb3"]).as_deref(),
            Some("lb2")
        );
        assert_eq!(
            suggest(LAYER_DEPENDENT, "lb", &["LB1"]).as_deref(),
            Some("lb2")
        );
        // Other layers' names do not count against this one.
        assert_eq!(
            suggest(LAYER_DEPENDENT, "db", &["lb1", "web1"]).as_deref(),
            Some("db1")
        );
    }

    #[test]
    fn layer_dependent_makes_the_shortname_hostname_safe() {
        assert_eq!(
            suggest(LAYER_DEPENDENT, "my_layer.v2", &[]).as_deref(),
            Some("my-layer-v21")
        );
        assert_eq!(
            suggest(LAYER_DEPENDENT, "__", &[]).as_deref(),
            Some("host1")
        );
        let long = "a".repeat(32);
        let name = suggest(LAYER_DEPENDENT, &long, &[]).unwrap();
        assert!(is_valid_hostname(&name, MAX_HOSTNAME_LEN), "{name}");
        assert_eq!(
            numbered(&"b".repeat(70), 12, MAX_HOSTNAME_LEN).len(),
            MAX_HOSTNAME_LEN
        );
        // Windows hostnames are at most 15 characters.
        let win = suggest_within(
            LAYER_DEPENDENT,
            "a-very-long-layer-name",
            &[],
            MAX_WINDOWS_HOSTNAME_LEN,
        )
        .unwrap();
        assert_eq!(win, "a-very-long-la1");
        assert_eq!(
            suggest_within(
                LAYER_DEPENDENT,
                "abcdefghijklm-xyz",
                &[],
                MAX_WINDOWS_HOSTNAME_LEN
            )
            .unwrap(),
            "abcdefghijklm1"
        );
        let cloud =
            suggest_within("Clouds", "x", &["altocumulus"], MAX_WINDOWS_HOSTNAME_LEN).unwrap();
        assert!(
            cloud.len() <= MAX_WINDOWS_HOSTNAME_LEN && cloud != "altocumulus",
            "{cloud}"
        );
        assert_eq!(suggest_within(LAYER_DEPENDENT, "x", &[], 1), None);
    }

    #[test]
    fn word_themes_hand_out_words_in_order_then_numbered() {
        assert_eq!(suggest("Fruits", "ignored", &[]).as_deref(), Some("apple"));
        assert_eq!(
            suggest("Fruits", "ignored", &["apple", "banana"]).as_deref(),
            Some("apricot")
        );
        let all: Vec<&str> = FRUITS.to_vec();
        assert_eq!(suggest("Fruits", "x", &all).as_deref(), Some("apple2"));
        let mut more = all.clone();
        more.push("apple2");
        assert_eq!(suggest("Fruits", "x", &more).as_deref(), Some("apricot2"));
        assert_eq!(suggest("Cheeses", "x", &[]), None);
    }

    #[test]
    fn hostname_rule() {
        assert!(is_valid_hostname("web1", MAX_HOSTNAME_LEN));
        assert!(is_valid_hostname("a-b", MAX_HOSTNAME_LEN));
        assert!(!is_valid_hostname("-web", MAX_HOSTNAME_LEN));
        assert!(!is_valid_hostname("web-", MAX_HOSTNAME_LEN));
        assert!(!is_valid_hostname("Not_A_Host!", MAX_HOSTNAME_LEN));
        assert!(!is_valid_hostname("Upper", MAX_HOSTNAME_LEN));
        assert!(!is_valid_hostname("", MAX_HOSTNAME_LEN));
        assert!(is_valid_hostname(&"h".repeat(63), MAX_HOSTNAME_LEN));
        assert!(!is_valid_hostname(&"h".repeat(64), MAX_HOSTNAME_LEN));
        assert!(!is_valid_hostname(
            &"h".repeat(16),
            MAX_WINDOWS_HOSTNAME_LEN
        ));
    }
}
