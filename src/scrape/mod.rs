//! Scraping: the exposition parsers, targets, one loop per target, and the
//! manager that turns discovered target groups into running loops.

pub mod exposition;
pub mod manager;
pub mod scrape_loop;
pub mod target;

pub use manager::ScrapeManager;
