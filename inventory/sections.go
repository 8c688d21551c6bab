package inventory

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/robfig/cron/v3"
)

// Built-in defaults of the [store] and [schedule] tables.
const (
	DefaultDatabase        = "collector"
	DefaultDataDir         = "data"
	DefaultRetention       = 90 * 24 * time.Hour
	DefaultRollupRetention = 400 * 24 * time.Hour
	DefaultSpoolMax        = 1 << 30
	DefaultCron            = "* * * * *" // every minute, on the minute
	DefaultConcurrency     = 256
	DefaultSplay           = 2 * time.Second
	DefaultGrace           = 30 * time.Second
)

// CronParser parses the schedules of [schedule] cron and a server's
// schedule: five fields, or six with seconds first, or a descriptor such as
// "@every 30s" or "@hourly".
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Store is the [store] table with defaults applied.
type Store struct {
	// URI of a MongoDB deployment; empty means the embedded store.
	URI      string
	Database string
	// DataDir holds the embedded store's files and the spool. A relative
	// data_dir is taken relative to the inventory file's directory.
	DataDir         string
	Retention       time.Duration // raw snapshots and attempts
	RollupRetention time.Duration // hourly and daily rollups
	SpoolMax        int64         // bytes
}

// Schedule is the [schedule] table with defaults applied.
type Schedule struct {
	Cron        string // the default schedule of every server
	Location    *time.Location
	Concurrency int           // servers probed at once
	Splay       time.Duration // each server waits a random part of this before its probe
	Grace       time.Duration // how long shutdown waits for rounds in flight
	// Resolution is every server's default Resolution; 0 turns watch mode
	// off.
	Resolution time.Duration
}

// storeTable is [store] as written; a nil field was not written.
type storeTable struct {
	URI             *string   `toml:"uri"`
	Database        *string   `toml:"database"`
	DataDir         *string   `toml:"data_dir"`
	Retention       *Duration `toml:"retention"`
	RollupRetention *Duration `toml:"rollup_retention"`
	SpoolMax        *ByteSize `toml:"spool_max"`
}

// scheduleTable is [schedule] as written.
type scheduleTable struct {
	Cron        *string   `toml:"cron"`
	Timezone    *string   `toml:"timezone"`
	Concurrency *int      `toml:"concurrency"`
	Splay       *Duration `toml:"splay"`
	Grace       *Duration `toml:"grace"`
	Resolution  *Duration `toml:"resolution"`
}

// A ByteSize is a size in bytes written as a string such as "1GiB", "500 MB"
// or "1048576".
type ByteSize int64

// UnmarshalText parses sizes with SI and IEC units.
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := humanize.ParseBytes(string(text))
	if err != nil {
		return fmt.Errorf("invalid size %q", text)
	}
	if n > 1<<62 {
		return fmt.Errorf("size %q is too large", text)
	}
	*b = ByteSize(n)
	return nil
}

// buildStore validates [store] and applies the defaults.
func (c *checker) buildStore(t storeTable) Store {
	p := place{table: "store", elem: -1}
	s := Store{
		URI:             deref(t.URI),
		Database:        DefaultDatabase,
		DataDir:         DefaultDataDir,
		Retention:       DefaultRetention,
		RollupRetention: DefaultRollupRetention,
		SpoolMax:        DefaultSpoolMax,
	}
	if s.URI != "" {
		u, err := url.Parse(s.URI)
		switch {
		case err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv"):
			c.report(p, "uri", fmt.Sprintf("uri %q is not a MongoDB URI", s.URI), `write "mongodb://host:27017" or "mongodb+srv://cluster.example.com", or remove uri to use the embedded store`)
		case u.User != nil:
			if _, hasPassword := u.User.Password(); hasPassword {
				c.report(p, "uri", "uri holds a password",
					"secrets are never written in this file: remove uri here and put the whole URI in the environment variable COLLECTOR_MONGO_URI")
			}
		}
	}
	if t.Database != nil {
		if *t.Database == "" || strings.ContainsAny(*t.Database, `/\. "$`) {
			c.report(p, "database", fmt.Sprintf("database name %q is not usable", *t.Database), `use letters, digits, "-" and "_", e.g. "collector"`)
		}
		s.Database = *t.Database
	}
	if t.DataDir != nil {
		if *t.DataDir == "" {
			c.report(p, "data_dir", "empty data_dir", "remove the key to use ./"+DefaultDataDir+" beside the inventory file")
		}
		c.checkControl(p, "data_dir", "data_dir", *t.DataDir, inFileNames)
		d, err := c.env.expand(*t.DataDir)
		if err != nil {
			c.report(p, "data_dir", err.Error(), "")
		}
		s.DataDir = d
	}
	if t.Retention != nil {
		s.Retention = time.Duration(*t.Retention)
		if s.Retention < time.Hour {
			c.report(p, "retention", fmt.Sprintf("retention %s is shorter than an hour", s.Retention), `keep raw snapshots at least an hour, e.g. "90d"`)
		}
	}
	if t.RollupRetention != nil {
		s.RollupRetention = time.Duration(*t.RollupRetention)
		if s.RollupRetention < 24*time.Hour {
			c.report(p, "rollup_retention", fmt.Sprintf("rollup_retention %s is shorter than a day", s.RollupRetention), `keep rollups at least a day, e.g. "400d"`)
		}
	}
	if t.SpoolMax != nil {
		s.SpoolMax = int64(*t.SpoolMax)
		if s.SpoolMax < 1<<20 {
			c.report(p, "spool_max", fmt.Sprintf("spool_max %d bytes is below 1 MiB", s.SpoolMax), `use a size such as "1GiB"; the spool keeps snapshots while the database is down`)
		}
	}
	return s
}

// resolveDataDir makes a relative data directory relative to the inventory
// file, so that the daemon finds the same data whatever its working directory.
func (s *Store) resolveDataDir(inventoryPath string) {
	if !filepath.IsAbs(s.DataDir) {
		s.DataDir = filepath.Join(filepath.Dir(inventoryPath), s.DataDir)
	}
}

// buildSchedule validates [schedule] and applies the defaults.
func (c *checker) buildSchedule(t scheduleTable) Schedule {
	p := place{table: "schedule", elem: -1}
	s := Schedule{Cron: DefaultCron, Location: time.Local, Concurrency: DefaultConcurrency, Splay: DefaultSplay, Grace: DefaultGrace, Resolution: DefaultResolution}
	if t.Cron != nil {
		s.Cron = *t.Cron
		c.checkCron(p, "cron", s.Cron)
	}
	if t.Timezone != nil {
		loc, err := time.LoadLocation(*t.Timezone)
		if err != nil || *t.Timezone == "" {
			c.report(p, "timezone", fmt.Sprintf("unknown time zone %q", *t.Timezone), `use an IANA name such as "UTC" or "Asia/Shanghai", or "Local"`)
		} else {
			s.Location = loc
		}
	}
	if t.Concurrency != nil {
		s.Concurrency = *t.Concurrency
		if s.Concurrency < 1 {
			c.report(p, "concurrency", fmt.Sprintf("concurrency %d is below 1", s.Concurrency), "use how many servers may be probed at once, e.g. 256")
		}
	}
	if t.Splay != nil {
		s.Splay = time.Duration(*t.Splay)
		if s.Splay < 0 {
			c.report(p, "splay", fmt.Sprintf("splay %s is negative", s.Splay), `use "0s" for no splay, or e.g. "2s"`)
		}
	}
	if t.Grace != nil {
		s.Grace = time.Duration(*t.Grace)
		if s.Grace < 0 {
			c.report(p, "grace", fmt.Sprintf("grace %s is negative", s.Grace), `e.g. "30s"`)
		}
	}
	if t.Resolution != nil {
		s.Resolution = time.Duration(*t.Resolution)
		if c.checkResolution(p, "resolution", s.Resolution) {
			c.checkResolutionFits(p, "resolution", s.Resolution, s.Cron, s.Location)
		}
	}
	return s
}

// checkCron reports a schedule that CronParser rejects.
func (c *checker) checkCron(p place, key, spec string) {
	if _, err := CronParser.Parse(spec); err != nil {
		c.report(p, key, fmt.Sprintf("bad schedule %q: %v", spec, err),
			`write five cron fields ("*/5 * * * *"), six with seconds first ("*/30 * * * * *"), or "@every 30s"`)
	}
}
