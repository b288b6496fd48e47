//! `serve` and `migrate`.

use tokio_util::sync::CancellationToken;

use super::integrations::connect;
use super::CliError;
use crate::app::Application;
use crate::config::Config;
use crate::shutdown;

pub(super) async fn migrate(config: &Config) -> Result<(), CliError> {
    let pool = connect(config).await?;
    relay_store::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}

pub(super) async fn serve(config: Config) -> Result<(), CliError> {
    let listen = config.listen;
    let public_url = config.public_base_url();
    let app = Application::build(config).await?;
    let token = CancellationToken::new();
    tokio::spawn(shutdown::on_signal(token.clone()));
    tracing::info!(listen = %listen, public_url = %public_url, "relay listening");
    app.run(token).await?;
    tracing::info!("relay stopped");
    Ok(())
}
