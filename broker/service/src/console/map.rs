//! The map of Europe: country shapes from `europe.txt` (ISO 3166-1 alpha-2, then an SVG
//! path in a 1000 x 800 box; `scripts/console-map.py` made it from Natural Earth), each
//! drawn with `data-jurisdiction` and `data-resources` and a class saying whether the tenant
//! has data there, may have, or may not.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use maud::{html, Markup};

/// The shapes, parsed once.
fn shapes() -> &'static [(&'static str, &'static str)] {
    static SHAPES: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    SHAPES.get_or_init(|| {
        include_str!("europe.txt")
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect()
    })
}

/// What the map shows of one country.
#[derive(Debug, Clone, Default)]
pub struct Country {
    /// Resources by type (`instance`, `volume`, `bucket`) the tenant keeps there.
    pub counts: BTreeMap<&'static str, u64>,
    /// Whether the tenant's policy allows it.
    pub allowed: bool,
    /// The members serving it.
    pub members: Vec<String>,
}

impl Country {
    fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The SVG map for `countries` (by alpha-2; countries not given are drawn plain).
pub fn render(countries: &BTreeMap<String, Country>) -> Markup {
    html! {
        svg class="map" viewBox="0 0 1000 800" role="img" aria-labelledby="map-title" xmlns="http://www.w3.org/2000/svg" {
            title id="map-title" { "Where your data lives" }
            rect class="sea" width="1000" height="800" {}
            @for (code, path) in shapes() {
                @let country = countries.get(*code);
                @let total = country.map_or(0, Country::total);
                @let class = match country {
                    Some(c) if c.total() > 0 => "country held",
                    Some(c) if c.allowed => "country allowed",
                    _ => "country",
                };
                path class=(class) d=(path) data-jurisdiction=(code) data-resources=(total) {
                    title {
                        (code) ": "
                        @if total == 0 { "no resources" } @else {
                            @for (i, (kind, n)) in country.map(|c| c.counts.iter().filter(|(_, n)| **n > 0).collect::<Vec<_>>()).unwrap_or_default().into_iter().enumerate() {
                                @if i > 0 { ", " }
                                (n) " " (kind) @if *n != 1 { "s" }
                            }
                        }
                        @if let Some(c) = country {
                            @if !c.members.is_empty() { " — members: " (c.members.join(", ")) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_country_of_the_alliance_has_a_shape() {
        let codes: Vec<&str> = shapes().iter().map(|(c, _)| *c).collect();
        for code in [
            "FR", "BE", "DE", "CH", "LU", "NL", "IT", "ES", "MT", "AD", "MC",
        ] {
            assert!(codes.contains(&code), "{code} missing from europe.txt");
        }
        let mut fr = Country {
            allowed: true,
            ..Country::default()
        };
        fr.counts.insert("bucket", 2);
        let svg = render(&BTreeMap::from([("FR".to_owned(), fr)])).into_string();
        assert!(svg.contains(r#"class="country held""#));
        assert!(svg.contains(r#"data-jurisdiction="FR" data-resources="2""#));
        assert!(svg.contains(r#"data-jurisdiction="BE" data-resources="0""#));
    }
}
