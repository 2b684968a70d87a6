import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import './styles.css'

const app = createApp(App)
app.config.errorHandler = (err) => {
  // a component error must not leave a blank screen: App shows this message
  window.dispatchEvent(new CustomEvent('ftlab:ui-error', { detail: err instanceof Error ? err.message : String(err) }))
  console.error(err)
}
app.use(createPinia()).mount('#app')
