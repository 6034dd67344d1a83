//! The firewall as data and as text: the rule model, the chains a plan gets, and the renderers
//! that turn them into iptables-restore and nft scripts. Pure: a plan goes in, text comes out;
//! listings read back are parsed here too, but never fetched.

pub mod foreign;
pub mod iptables;
pub mod lockout;
pub mod nft;
pub mod residue;
pub mod ruleset;
