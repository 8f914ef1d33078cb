//! The engines this btar is built with. The one place that names an engine crate: everything else
//! asks the registry by the engine kind a service or location records.

use std::sync::Arc;

use btar_engine::Engines;

pub fn built_in() -> Engines {
    Engines::default()
        .with(Arc::new(btar_engine_pg::PgEngine))
        .with(Arc::new(btar_engine_mysql::MysqlEngine))
}
