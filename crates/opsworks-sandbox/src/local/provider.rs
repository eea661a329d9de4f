//! The local provider behind the [`Provider`] trait: each operation runs its blocking form on
//! tokio's blocking pool.

use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;

use super::LocalProvider;
use crate::Provider;
use crate::error::Result;
use crate::spec::{ExecOutput, Machine, MachineSpec, MachineState};

#[async_trait]
impl Provider for LocalProvider {
    async fn provision(&self, spec: MachineSpec) -> Result<Machine> {
        self.blocking(move |p| p.provision_blocking(spec)).await
    }

    async fn status(&self, id: &str) -> Result<MachineState> {
        let id = id.to_string();
        self.blocking(move |p| p.status_blocking(&id)).await
    }

    async fn describe(&self, id: &str) -> Result<Option<Machine>> {
        let id = id.to_string();
        self.blocking(move |p| p.describe_blocking(&id)).await
    }

    async fn list(&self) -> Result<Vec<Machine>> {
        self.blocking(|p| p.list_blocking()).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let id = id.to_string();
        self.blocking(move |p| p.stop_blocking(&id, grace)).await
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.blocking(move |p| p.destroy_blocking(&id)).await
    }

    async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput> {
        let id = id.to_string();
        let argv = argv.to_vec();
        self.blocking(move |p| p.exec_blocking(&id, &argv)).await
    }

    async fn reserve_address(&self, ip: Ipv4Addr) -> Result<()> {
        self.blocking(move |p| p.reserve_address_blocking(ip)).await
    }

    async fn release_address(&self, ip: Ipv4Addr) -> Result<()> {
        self.blocking(move |p| p.release_address_blocking(ip)).await
    }

    async fn reserved_addresses(&self) -> Result<Vec<Ipv4Addr>> {
        self.blocking(|p| p.reserved_addresses_blocking()).await
    }

    async fn add_address(&self, id: &str, ip: Ipv4Addr) -> Result<()> {
        let id = id.to_string();
        self.blocking(move |p| p.add_address_blocking(&id, ip))
            .await
    }

    async fn remove_address(&self, id: &str, ip: Ipv4Addr) -> Result<()> {
        let id = id.to_string();
        self.blocking(move |p| p.remove_address_blocking(&id, ip))
            .await
    }

    async fn extra_addresses(&self, id: &str) -> Result<Vec<Ipv4Addr>> {
        let id = id.to_string();
        self.blocking(move |p| p.extra_addresses_blocking(&id))
            .await
    }
}
