// `sqlx::migrate!` embeds the migrations at compile time; without this, cargo would not
// rebuild the crate when a migration is added (sqlx's own `migrate build-script`).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
