# UNTESTED example: shoal on Nomad with Consul. Nothing in this repository
# runs it (only deploy/swarm/stack.yml is tested, by `make swarm`); check it
# on your cluster before you rely on it.
#
#   nomad var put nomad/jobs/shoal gossip_key="$(openssl rand -base64 32)"
#   nomad job run deploy/nomad/shoal.nomad.hcl
#
# The agents register themselves in Consul (--consul.register=shoal, a TTL
# check that passes while ready and warns while joining or leaving) and
# join through it (--cluster.join=consul+shoal), so Nomad registers no
# service of its own for them.
job "shoal" {
  type = "service"

  group "shoal" {
    count = 3

    # One allocation at a time; the next one stops only after the new one
    # has been healthy (ready: joined) for min_healthy_time, the handoff
    # lead plus a scrape. A failed rollout goes back to the last good job.
    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "20s"
      healthy_deadline = "3m"
      auto_revert      = true
    }

    # The delivery queue survives a restart and, where Nomad can, moves
    # with a rescheduled allocation.
    ephemeral_disk {
      size    = 4096 # MB, above --storage.max-size (2GiB) per endpoint
      sticky  = true
      migrate = true
    }

    network {
      port "http" {}
      port "gossip" {}
    }

    # Nomad's own check of readiness, for the update stanza above.
    service {
      name     = "shoal-http"
      port     = "http"
      provider = "nomad"
      check {
        type     = "http"
        path     = "/-/ready"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "shoal" {
      driver = "docker"

      # The stop stages: announce and scrape until the handoff instant (at
      # most 15 s + 5 s + 2 s), a scrape in flight, the flush (30 s + 5 s),
      # gossip leave (10 s) and HTTP: under 90 s, then Nomad kills it.
      kill_signal  = "SIGTERM"
      kill_timeout = "90s"

      config {
        image        = "shoal:latest"
        network_mode = "host"
        args = [
          "--config.file=/local/shoal.yml",
          "--storage.path=/alloc/data/shoal",
          "--web.listen-address=0.0.0.0:${NOMAD_PORT_http}",
          "--cluster.listen-address=0.0.0.0:${NOMAD_PORT_gossip}",
          "--cluster.advertise-address=${NOMAD_ADDR_gossip}",
          # shoal-0, shoal-1, ...: the same name after a restart.
          "--cluster.node-name=${NOMAD_JOB_NAME}-${NOMAD_ALLOC_INDEX}",
          "--cluster.join=consul+shoal",
          "--consul.address=${attr.unique.network.ip-address}:8500",
          "--consul.register=shoal",
          "--cluster.secret-key-file=/secrets/gossip.key",
          "--cluster.handoff-lead=5s",
          "--cluster.handoff-timeout=15s",
          "--storage.remote.flush-deadline=30s",
        ]
      }

      # Only the first allocation may start a new cluster, once no peer
      # has answered for 10 s; the others join it (or each other).
      template {
        data        = <<-EOT
          SHOAL_CLUSTER_BOOTSTRAP={{ if eq (env "NOMAD_ALLOC_INDEX") "0" }}true{{ else }}false{{ end }}
        EOT
        destination = "local/bootstrap.env"
        env         = true
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/shoal\" }}{{ .gossip_key }}{{ end }}"
        destination = "secrets/gossip.key"
        perms       = "0444"
      }

      template {
        destination = "local/shoal.yml"
        data        = <<-EOT
          global:
            scrape_interval: 15s
          scrape_configs:
            - job_name: node
              consul_sd_configs:
                - server: {{ env "attr.unique.network.ip-address" }}:8500
                  services: [node-exporter]
          remote_write:
            - name: tsdb
              url: http://mimir.service.consul:9009/api/v1/push
              queue_config:
                batch_send_deadline: 1s
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
