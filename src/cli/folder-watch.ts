// Noticing saves in a project folder (or one file). fs.watch on a file follows its inode, and
// Node 20's recursive watch on Linux watches each file that way: after a save by rename (an
// editor's atomic save, `sed -i`) the watched inode is the old file's, and later saves went
// unseen. Directories are watched instead, one non-recursive fs.watch each, which sees writes,
// creates, renames and deletes of their entries whatever the inode; the set of directories is
// walked again after every change, so folders created later are watched too.
import { readdirSync, realpathSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface FolderWatch {
  close(): void;
}

/** Which entries of a watched directory matter: all YAML and folders, or only these names. */
type Interest = 'project' | Set<string>;

const isYamlName = (name: string) => /\.ya?ml$/.test(name);

function realPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function addInterest(into: Map<string, Interest>, dir: string, interest: Interest): void {
  const had = into.get(dir);
  if (had === 'project' || interest === 'project') into.set(dir, 'project');
  else into.set(dir, new Set([...(had ?? []), ...interest]));
}

/**
 * The directories to watch for `path`, as the loader reads it: every folder under it (dot
 * entries skipped, symlinked folders followed unless they loop), and for a symlinked YAML file
 * the folder of its target too, since writes to the target do not show in the link's folder.
 */
function watchedDirectories(path: string): Map<string, Interest> {
  const dirs = new Map<string, Interest>();
  const linkedFile = (file: string) => {
    const real = realPath(file);
    if (real && real !== file) addInterest(dirs, dirname(real), new Set([basename(real)]));
  };
  if (!isDirectory(path)) {
    // One file, or a path that is gone: its folder shows it being written, replaced or created.
    addInterest(dirs, dirname(path), new Set([basename(path)]));
    linkedFile(path);
    return dirs;
  }
  const walk = (dir: string, ancestors: Set<string>) => {
    addInterest(dirs, dir, 'project');
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      const child = join(dir, entry);
      if (isDirectory(child)) {
        const real = realPath(child);
        if (real && !ancestors.has(real)) walk(child, new Set([...ancestors, real]));
      } else if (isYamlName(entry)) linkedFile(child);
    }
  };
  walk(path, new Set([realPath(path) ?? path]));
  return dirs;
}

/** Whether an event for `name` in `dir` can change what the loader reads. */
function matters(dir: string, name: string | null, interest: Interest, watched: Map<string, unknown>): boolean {
  if (name === null) return true;
  if (interest !== 'project') return interest.has(name);
  // Editors' swap and backup files (.x.swp, x.yaml~) change often and are never read.
  if (name.startsWith('.')) return false;
  const child = join(dir, name);
  return isYamlName(name) || watched.has(child) || isDirectory(child);
}

/** Calls `onChange` (possibly several times per save) whenever a YAML file the loader reads may have changed. */
export function watchProject(path: string, onChange: () => void): FolderWatch {
  const watchers = new Map<string, { watcher: FSWatcher; interest: Interest }>();
  let closed = false;
  let resyncScheduled = false;

  const resync = () => {
    resyncScheduled = false;
    if (closed) return;
    const wanted = watchedDirectories(path);
    for (const [dir, w] of watchers) {
      if (!wanted.has(dir)) {
        w.watcher.close();
        watchers.delete(dir);
      }
    }
    for (const [dir, interest] of wanted) {
      const existing = watchers.get(dir);
      if (existing) existing.interest = interest;
      else start(dir, interest);
    }
  };
  const scheduleResync = () => {
    if (resyncScheduled) return;
    resyncScheduled = true;
    setImmediate(resync);
  };

  const start = (dir: string, interest: Interest) => {
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: true }, (_event, name) => {
        const entry = watchers.get(dir);
        if (!entry || !matters(dir, name === null ? null : String(name), entry.interest, watchers)) return;
        scheduleResync();
        onChange();
      });
    } catch {
      return; // gone or unreadable; the next resync tries again
    }
    // A watched folder that is deleted or becomes unreadable: forget it, look again, and re-plan.
    watcher.on('error', () => {
      watcher.close();
      if (watchers.get(dir)?.watcher === watcher) watchers.delete(dir);
      scheduleResync();
      onChange();
    });
    watchers.set(dir, { watcher, interest });
  };

  resync();
  return {
    close: () => {
      closed = true;
      for (const w of watchers.values()) w.watcher.close();
      watchers.clear();
    },
  };
}
