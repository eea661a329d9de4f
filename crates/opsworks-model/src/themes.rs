//! Hostname themes and their word lists.

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

/// Whether `name` is a hostname theme of the API.
pub fn is_theme(name: &str) -> bool {
    THEME_NAMES.contains(&name)
}
